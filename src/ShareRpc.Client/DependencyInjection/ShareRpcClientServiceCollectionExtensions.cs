using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ShareRpc.Client.DependencyInjection;

/// <summary>Registers the ShareRpc client with a service container.</summary>
public static class ShareRpcClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ShareRpcClientOptions"/> (options pattern, validated when the host
    /// starts: <c>ValidateOnStart</c>) and one <see cref="ShareRpcClient"/> singleton built from
    /// them, disposed with the container. <see cref="ShareRpcClient"/> is
    /// <see cref="IAsyncDisposable"/> only: dispose the provider with <c>DisposeAsync</c> (a host
    /// does). Calling this again adds another configure step to the same options and client.
    /// </summary>
    public static IServiceCollection AddShareRpcClient(this IServiceCollection services, Action<ShareRpcClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddShareRpcClient((o, _) => configure(o));
    }

    /// <summary>
    /// As <see cref="AddShareRpcClient(IServiceCollection, Action{ShareRpcClientOptions})"/>, with
    /// the service provider at hand, e.g. to take the HTTP handler from
    /// <c>IHttpMessageHandlerFactory</c>:
    /// <code>
    /// services.AddHttpClient("sharerpc").ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { ... });
    /// services.AddShareRpcClient((o, sp) =>
    /// {
    ///     o.OutboxPath = "/var/lib/agent/outbox.db";
    ///     o.Channel.HttpHandler = sp.GetRequiredService&lt;IHttpMessageHandlerFactory&gt;().CreateHandler("sharerpc");
    /// });
    /// </code>
    /// The client keeps that handler for its lifetime (gRPC channels are long-lived) and does
    /// not dispose it.
    /// </summary>
    public static IServiceCollection AddShareRpcClient(this IServiceCollection services, Action<ShareRpcClientOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<ShareRpcClientOptions>()
            .Configure<IServiceProvider>(configure)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ShareRpcClientOptions>, ShareRpcClientOptionsValidator>());
        services.TryAddSingleton(sp => new ShareRpcClient(sp.GetRequiredService<IOptions<ShareRpcClientOptions>>().Value));
        return services;
    }
}
