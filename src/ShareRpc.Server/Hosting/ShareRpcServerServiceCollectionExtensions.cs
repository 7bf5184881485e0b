using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ShareRpc.Server;
using ShareRpc.Server.Hosting;
using ShareRpc.Server.Service;
using ShareRpc.Server.Storage;
using Sharerpc.V1;

// In the namespace of AddGrpc, so that a host needs no using for it (grpc-dotnet's convention).
namespace Microsoft.Extensions.DependencyInjection;

/// <summary><c>services.AddShareRpcServer(o => …)</c>: the ShareRpc server on Grpc.AspNetCore.</summary>
public static class ShareRpcServerServiceCollectionExtensions
{
    /// <summary>Largest gRPC message received or sent (bytes): 4 MiB both ways (grpc-dotnet leaves sending unlimited).</summary>
    public const int MaxMessageBytes = 4 * 1024 * 1024;

    /// <summary>
    /// Registers gRPC (<c>AddGrpc</c>, 4 MiB message limits both ways), the options (validated at
    /// start), the engine — on the embedded SQLite store, or on an <see cref="IShareStore"/> the app
    /// registered — health checks (grpc.health.v1), reflection (grpc.reflection.v1) and the request
    /// checks and gRPC-Web middleware in front of the endpoints. Map the service with
    /// <c>app.MapShareRpc()</c>.
    /// </summary>
    public static IServiceCollection AddShareRpcServer(this IServiceCollection services, Action<ShareRpcServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<ShareRpcServerOptions>();
        if (configure is not null) options.Configure(configure);
        options.Validate(o =>
        {
            o.Validate();
            return true;
        }).ValidateOnStart();

        services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = MaxMessageBytes;
            o.MaxSendMessageSize = MaxMessageBytes;
        }).AddServiceOptions<ShareRpcService>(o => o.Interceptors.Add<ShareRpcCallInterceptor>());
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(o => o.Services.Map(Reasons.ServiceName, _ => true))
            .AddCheck<ShareRpcHealthCheck>("sharerpc");

        services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<ShareRpcServerOptions>>().Value;
            // A store registered by the app (e.g. PostgreSQL) replaces the embedded SQLite store;
            // the live-ref key stays in a file (ServerKeyFile, or the data directory), outside the database.
            return sp.GetService<IShareStore>() is { } store
                ? new ShareEngine(store, o.LoadServerKey(), o, sp.GetService<TimeProvider>(), ownsStore: false, sp.GetService<ILoggerFactory>())
                : ShareEngine.OpenSqlite(o, sp.GetService<TimeProvider>(), sp.GetService<ILoggerFactory>());
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, ShareRpcLifecycle>());
        services.TryAddSingleton<ShareRpcService>();
        services.TryAddSingleton<ShareRpcCallInterceptor>();
        services.TryAddEnumerable(ServiceDescriptor.Transient<IStartupFilter, ShareRpcStartupFilter>());
        // Binds the shared cleartext port of ListenShareRpc (h2c and HTTP/1.1 on one port); inert otherwise.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConnectionListenerFactory, SharedCleartextPortListenerFactory>());
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<ShareRpcServerOptions>>((kestrel, o) =>
            kestrel.Limits.Http2.MaxStreamsPerConnection = o.Value.Limits.MaxStreamsPerConnection);
        return services;
    }

    /// <summary>
    /// Puts <see cref="GrpcRequestChecks"/> in front of every gRPC call, and gRPC-Web (for browsers)
    /// on the ShareRpc and health services only: it needs no endpoint metadata, so it can run before
    /// routing without switching gRPC-Web on for the app's other services.
    /// </summary>
    private sealed class ShareRpcStartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.UseMiddleware<GrpcRequestChecks>();
            app.UseWhen(
                c => c.Request.Path.StartsWithSegments("/" + Reasons.ServiceName) || c.Request.Path.StartsWithSegments("/grpc.health.v1.Health"),
                web => web.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true }));
            next(app);
        };
    }
}
