using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ShareRpc.Viewer;

// In the namespace of AddShareRpcServer, so that a host needs no using for it.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary><c>services.AddShareRpcViewer()</c>: the viewer page at <c>/view</c>.</summary>
public static class ShareRpcViewerServiceCollectionExtensions
{
    /// <summary>
    /// Serves the viewer page at <see cref="ShareRpcViewer.Path"/> with its security headers, in
    /// front of the app's pipeline (a startup filter, so <c>ShareRpcServerHost</c> and any host that
    /// maps ShareRpc get it without another call). The page talks gRPC-Web to this same server, which
    /// <c>AddShareRpcServer</c> enables for the ShareRpc service.
    /// </summary>
    public static IServiceCollection AddShareRpcViewer(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddEnumerable(ServiceDescriptor.Transient<IStartupFilter, ViewerStartupFilter>());
        return services;
    }

    private sealed class ViewerStartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.UseMiddleware<ViewerMiddleware>();
            next(app);
        };
    }
}
