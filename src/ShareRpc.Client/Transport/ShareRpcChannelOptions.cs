using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace ShareRpc.Client;

/// <summary>
/// How the client reaches servers: one Grpc.Net.Client <c>GrpcChannel</c> per server address,
/// over the HTTP handler built from these settings (a tuned <see cref="SocketsHttpHandler"/>), or
/// over one you bring (<see cref="HttpHandler"/>; with dependency injection, the
/// <c>IHttpClientFactory</c> client that <c>AddShareRpcClient</c> returns).
/// </summary>
public sealed class ShareRpcChannelOptions
{
    /// <summary>Largest response message accepted (bytes); larger → RESOURCE_EXHAUSTED. 4 MiB, the server's limit.</summary>
    public int MaxReceiveMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Largest request message sent (bytes); larger → RESOURCE_EXHAUSTED before it leaves. 4 MiB, the server's limit.</summary>
    public int MaxSendMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>HTTP/2 receive window per stream (bytes). 16 MiB measured 20–30 % faster than the default on loopback.</summary>
    public int InitialStreamWindowBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>TCP (and TLS) connect timeout.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Idle time on a connection with open calls before an HTTP/2 PING checks the peer (finds a dead server under an idle subscription).</summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a keepalive PING may go unanswered before the connection is closed.</summary>
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Trust this certificate as a root for https:// addresses (a server with a self-signed certificate). Name mismatches are never excused.</summary>
    public X509Certificate2? TrustedRootCertificate { get; set; }

    /// <summary>
    /// Bring your own primary handler: the settings above that belong to the handler (window,
    /// timeouts, TLS root) then do not apply. The client does not dispose it.
    /// </summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>
    /// Handlers put in front of the primary handler of every channel, outermost first, as
    /// <c>AddHttpMessageHandler</c> does with <c>IHttpClientFactory</c>: each factory makes a
    /// <see cref="DelegatingHandler"/> with no inner handler (the client sets it). For fault
    /// injection, recording, custom auth.
    /// </summary>
    public IList<Func<DelegatingHandler>> DelegatingHandlers { get; } = new List<Func<DelegatingHandler>>();

    /// <summary>
    /// The primary handler the client builds from these settings when none is brought: HTTP/2,
    /// tuned for long-lived streams (window, keepalive, connect timeout, TLS root). Also usable under
    /// a plain <c>GrpcChannel</c> or <c>AddGrpcClient</c>. The caller owns (disposes) it.
    /// </summary>
    public SocketsHttpHandler CreateHttpHandler()
    {
        var options = this;
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = options.InitialStreamWindowBytes,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            // Keepalive pings find a dead peer on an idle stream (a stalled subscriber).
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,

            // A connect callback of our own makes Grpc.Net.Client leave connections to this handler
            // instead of running its subchannels: a call after a server restart connects at once, and
            // the SDK's jittered backoff is the only backoff (docs/client.md, "Reconnects"). Subchannels
            // would fail calls fast until their own reconnect backoff (1 s doubling to 2 min) has passed.
            ConnectCallback = ConnectAsync,
        };
        if (options.TrustedRootCertificate is { } root)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) => ValidateWithRoot(cert, errors, root);
        }

        return handler;
    }

    /// <summary>A plain TCP connect, as SocketsHttpHandler's own (Nagle off: acks and batches go out at once).</summary>
    private static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static bool ValidateWithRoot(X509Certificate? presented, SslPolicyErrors errors, X509Certificate2 root)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        // A name mismatch or a missing certificate is never excused; only the unknown root is.
        if (presented is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var cert = X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        return chain.Build(cert);
    }

    internal IEnumerable<string> Problems()
    {
        if (MaxReceiveMessageBytes <= 0) yield return $"Channel.MaxReceiveMessageBytes must be > 0 (was {MaxReceiveMessageBytes}).";
        if (MaxSendMessageBytes <= 0) yield return $"Channel.MaxSendMessageBytes must be > 0 (was {MaxSendMessageBytes}).";
        if (InitialStreamWindowBytes < 65_535) yield return $"Channel.InitialStreamWindowBytes must be >= 65535, the HTTP/2 minimum (was {InitialStreamWindowBytes}).";
        if (ConnectTimeout <= TimeSpan.Zero) yield return $"Channel.ConnectTimeout must be > 0 (was {ConnectTimeout}).";
        if (KeepAlivePingDelay <= TimeSpan.Zero) yield return $"Channel.KeepAlivePingDelay must be > 0 (was {KeepAlivePingDelay}).";
        if (KeepAlivePingTimeout <= TimeSpan.Zero) yield return $"Channel.KeepAlivePingTimeout must be > 0 (was {KeepAlivePingTimeout}).";
    }
}
