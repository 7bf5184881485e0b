using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ShareRpc.Client;

// In the namespace of AddHttpClient and AddGrpcClient, so that a host needs no using for it.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// <c>services.AddShareRpcClient(o => …)</c>: the ShareRpc client on <c>IHttpClientFactory</c>,
/// with the conventions of Grpc.Net.ClientFactory — named options, and an
/// <see cref="IHttpClientBuilder"/> to configure its HTTP handlers with
/// (<c>ConfigurePrimaryHttpMessageHandler</c>, <c>AddHttpMessageHandler</c>).
/// </summary>
public static class ShareRpcClientServiceCollectionExtensions
{
    /// <summary>The name of the default client, of its options and of its HTTP client.</summary>
    public const string DefaultName = "ShareRpc";

    /// <summary>
    /// Registers the default <see cref="ShareRpcClient"/>: a singleton (its outbox and channels are
    /// long-lived), disposed with the container (dispose it with <c>DisposeAsync</c>, as a host
    /// does), built from <see cref="ShareRpcClientOptions"/> validated when the host starts.
    /// Calling it again adds another configure step to the same client.
    /// </summary>
    public static IHttpClientBuilder AddShareRpcClient(this IServiceCollection services, Action<ShareRpcClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddShareRpcClient(DefaultName, (o, _) => configure(o));
    }

    /// <summary>As <see cref="AddShareRpcClient(IServiceCollection, Action{ShareRpcClientOptions})"/>, with the service provider at hand.</summary>
    public static IHttpClientBuilder AddShareRpcClient(this IServiceCollection services, Action<ShareRpcClientOptions, IServiceProvider> configure) =>
        services.AddShareRpcClient(DefaultName, configure);

    /// <summary>
    /// Registers a named client: its options are the named options <paramref name="name"/>, its
    /// channels use the HTTP client <paramref name="name"/>, and it is the keyed service
    /// <paramref name="name"/> (<c>[FromKeyedServices("name")] ShareRpcClient client</c>). The default
    /// name is also registered as the unkeyed <see cref="ShareRpcClient"/>.
    /// </summary>
    public static IHttpClientBuilder AddShareRpcClient(this IServiceCollection services, string name, Action<ShareRpcClientOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(configure);

        services.AddOptions<ShareRpcClientOptions>(name).Configure(configure)
            // The host's logging, unless the app set a factory of its own (docs/design.md, "Diagnostics").
            .PostConfigure<IServiceProvider>((o, sp) =>
            {
                if (o.LoggerFactory is NullLoggerFactory && sp.GetService<ILoggerFactory>() is { } hostLogging) o.LoggerFactory = hostLogging;
            })
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ShareRpcClientOptions>, ShareRpcClientOptionsValidator>());

        // The primary handler is the tuned SocketsHttpHandler unless the app configures another. A gRPC
        // channel lives as long as the client, so the handler chain it takes is kept, not rotated.
        var http = services.AddHttpClient(name)
            .ConfigurePrimaryHttpMessageHandler(sp => Options(sp, name).Channel.CreateHttpHandler());

        services.TryAddKeyedSingleton(name, (sp, _) => new ShareRpcClient(
            Options(sp, name),
            () => sp.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(name)));
        if (name == DefaultName)
        {
            services.TryAddSingleton(sp => sp.GetRequiredKeyedService<ShareRpcClient>(DefaultName));
        }

        return http;
    }

    private static ShareRpcClientOptions Options(IServiceProvider services, string name) =>
        services.GetRequiredService<IOptionsMonitor<ShareRpcClientOptions>>().Get(name);

    /// <summary>Refuses broken options when the host starts, each problem named with its value (what the client's constructor would throw).</summary>
    private sealed class ShareRpcClientOptionsValidator : IValidateOptions<ShareRpcClientOptions>
    {
        public ValidateOptionsResult Validate(string? name, ShareRpcClientOptions options)
        {
            var problems = options.Problems();
            return problems.Count == 0
                ? ValidateOptionsResult.Success
                : ValidateOptionsResult.Fail(problems.Select(p => "ShareRpcClientOptions." + p));
        }
    }
}
