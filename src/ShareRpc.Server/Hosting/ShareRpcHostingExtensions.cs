using ShareRpc.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ShareRpc.Protocol.V1;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Service;
using ShareRpc.Server.Storage;
using ShareRpc.Wire;
using ShareRpc.Wire.Health.V1;

namespace ShareRpc.Server.Hosting;

/// <summary><c>services.AddShareRpcServer(o => …)</c> and <c>app.MapShareRpc()</c>.</summary>
public static class ShareRpcHostingExtensions
{
    /// <summary>
    /// Registers the options (validated at start), the engine — on the embedded SQLite store, or on an
    /// <see cref="IShareStore"/> the app registered — and the wire layer.
    /// </summary>
    public static IServiceCollection AddShareRpcServer(this IServiceCollection services, Action<ShareRpcServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddGrpcWire();
        var options = services.AddOptions<ShareRpcServerOptions>();
        if (configure is not null) options.Configure(configure);
        options.Validate(o =>
        {
            o.Validate();
            return true;
        }).ValidateOnStart();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<ShareRpcServerOptions>>().Value;
            // A store registered by the app (e.g. PostgreSQL) replaces the embedded SQLite store;
            // the live-ref key stays in a file (ServerKeyFile, or the data directory), outside the database.
            return sp.GetService<IShareStore>() is { } store
                ? new ShareEngine(store, o.LoadServerKey(), o, sp.GetService<TimeProvider>(), ownsStore: false)
                : ShareEngine.OpenSqlite(o, sp.GetService<TimeProvider>());
        });
        services.AddSingleton<HealthStatusRegistry>();
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<ShareRpcServerOptions>>((kestrel, o) =>
            kestrel.Limits.Http2.MaxStreamsPerConnection = o.Value.Limits.MaxStreamsPerConnection);
        return services;
    }

    /// <summary>Maps sharerpc.v1.ShareRpc, grpc.health.v1.Health (Check, Watch) and grpc.reflection.v1.ServerReflection.</summary>
    public static IEndpointConventionBuilder MapShareRpc(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var engine = endpoints.ServiceProvider.GetRequiredService<ShareEngine>();
        var health = endpoints.ServiceProvider.GetRequiredService<HealthStatusRegistry>();
        var builder = endpoints.MapGrpcService(ShareRpcService.Create(engine));
        endpoints.MapGrpcService(GrpcHealth.CreateService(health));
        endpoints.MapGrpcService(GrpcReflection.CreateService([ShareRpcReflection.Descriptor]));
        health.SetStatus("", HealthCheckResponse.Types.ServingStatus.Serving);
        health.SetStatus(ShareRpcMethods.ServiceName, HealthCheckResponse.Types.ServingStatus.Serving);
        return builder;
    }
}
