using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using ShareRpc.Wire.Client.Internal;

namespace ShareRpc.Wire;

/// <summary>
/// A connection pool to one server and the call invoker for it. Owns its SocketsHttpHandler
/// (HTTP/2 only, with prior knowledge on http://) and disposes it.
/// </summary>
public sealed class GrpcChannel : IDisposable
{
    private readonly bool _ownsHandler;

    private GrpcChannel(Uri address, GrpcChannelOptions options, HttpMessageHandler handler, bool ownsHandler)
    {
        Address = address;
        Options = options;
        _ownsHandler = ownsHandler;
        Invoker = new HttpMessageInvoker(handler, disposeHandler: false);
        Handler = handler;
    }

    public Uri Address { get; }

    internal GrpcChannelOptions Options { get; }

    internal HttpMessageInvoker Invoker { get; }

    private HttpMessageHandler Handler { get; }

    /// <summary>Address like "http://127.0.0.1:5000" (h2c) or "https://localhost:5001" (TLS, ALPN h2).</summary>
    public static GrpcChannel ForAddress(string address, GrpcChannelOptions? options = null) =>
        ForAddress(new Uri(address, UriKind.Absolute), options);

    public static GrpcChannel ForAddress(Uri address, GrpcChannelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"Address '{address}' must be http:// or https://.", nameof(address));
        }

        options ??= new GrpcChannelOptions();
        options.Validate();
        if (options.HttpHandler is not null)
        {
            return new GrpcChannel(address, options, options.HttpHandler, ownsHandler: false);
        }

        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = options.InitialStreamWindowBytes,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromMilliseconds(options.ConnectTimeoutMs),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            // Keepalive pings find a dead peer on an idle stream (a stalled subscriber).
            KeepAlivePingDelay = TimeSpan.FromSeconds(60),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
        };
        if (options.TrustedRootCertificate is { } root)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) => ValidateWithRoot(cert, errors, root);
        }

        return new GrpcChannel(address, options, handler, ownsHandler: true);
    }

    public AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options = default)
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        call.StartSingleRequest(request);
        return new AsyncUnaryCall<TResponse>(call, call.ReadSingleResponseAsync());
    }

    public AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options = default)
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        call.StartSingleRequest(request);
        return new AsyncServerStreamingCall<TResponse>(call);
    }

    public AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options = default)
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        call.StartStreamingRequest();
        return new AsyncClientStreamingCall<TRequest, TResponse>(call, call.ReadSingleResponseAsync());
    }

    public AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options = default)
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        call.StartStreamingRequest();
        return new AsyncDuplexStreamingCall<TRequest, TResponse>(call);
    }

    public void Dispose()
    {
        Invoker.Dispose();
        if (_ownsHandler)
        {
            Handler.Dispose();
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
}
