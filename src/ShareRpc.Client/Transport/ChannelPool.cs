using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;

namespace ShareRpc.Client.Transport;

/// <summary>
/// One Grpc.Net.Client channel per server address (sturdy refs name their server; a client may
/// talk to several), each over its own handler chain: the <see cref="ShareRpcChannelOptions.DelegatingHandlers"/>
/// in front of the primary handler — one from <c>IHttpClientFactory</c> (dependency injection),
/// the app's own, or a <see cref="SocketsHttpHandler"/> tuned from the options.
/// </summary>
internal sealed class ChannelPool : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<GrpcChannel>> _channels = new(StringComparer.Ordinal);
    private readonly ShareRpcChannelOptions _options;
    private readonly Func<HttpMessageHandler>? _handlerFactory;
    private readonly (TimeSpan Initial, TimeSpan Max) _reconnect;

    /// <param name="options">The channel settings.</param>
    /// <param name="reconnect">The client's backoff between reconnects.</param>
    /// <param name="handlerFactory">When set (dependency injection), makes each channel's whole handler chain; the options' handlers are not used.</param>
    public ChannelPool(ShareRpcChannelOptions options, (TimeSpan Initial, TimeSpan Max) reconnect, Func<HttpMessageHandler>? handlerFactory = null)
    {
        _options = options;
        _reconnect = reconnect;
        _handlerFactory = handlerFactory;
    }

    public GrpcChannel For(string address) =>
        _channels.GetOrAdd(address.TrimEnd('/'), a => new Lazy<GrpcChannel>(() => Create(a))).Value;

    public CallInvoker Invoker(string address) => For(address).CreateCallInvoker();

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            if (channel.IsValueCreated)
            {
                channel.Value.Dispose();
            }
        }
    }

    private GrpcChannel Create(string address)
    {
        var (handler, owned) = Handler();
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = owned,
            MaxReceiveMessageSize = _options.MaxReceiveMessageBytes,
            MaxSendMessageSize = _options.MaxSendMessageBytes,
            // Used only when a brought handler lets Grpc.Net.Client run its subchannels: reconnect as the SDK does.
            InitialReconnectBackoff = _reconnect.Initial,
            MaxReconnectBackoff = _reconnect.Max,
        });
    }

    /// <summary>The handler chain of one channel, and whether the channel owns (disposes) it.</summary>
    private (HttpMessageHandler Handler, bool Owned) Handler()
    {
        if (_handlerFactory is not null)
        {
            // IHttpClientFactory tracks the lifetime of what it hands out; disposing its handler is a no-op.
            return (_handlerFactory(), true);
        }

        // A handler the app brought is never disposed here (disposing a DelegatingHandler disposes its inner one).
        var owned = _options.HttpHandler is null;
        HttpMessageHandler handler = _options.HttpHandler ?? _options.CreateHttpHandler();
        for (var i = _options.DelegatingHandlers.Count - 1; i >= 0; i--)
        {
            var outer = _options.DelegatingHandlers[i]();
            outer.InnerHandler = handler;
            handler = outer;
        }

        return (handler, owned);
    }
}
