using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// A running share server: Kestrel (h2c, or TLS with a certificate) on one address, with
/// <c>AddShareRpcServer</c> + <c>MapShareRpc</c>. What <c>sharerpc serve</c>, the demo, the
/// benchmarks, the chaos harness and the tests all start, so they start the same thing.
/// </summary>
public sealed class ShareRpcServerHost : IAsyncDisposable
{
    private ShareRpcServerHost(WebApplication app, string address)
    {
        App = app;
        Address = address;
    }

    public WebApplication App { get; }

    public IServiceProvider Services => App.Services;

    internal ShareEngine Engine => App.Services.GetRequiredService<ShareEngine>();

    /// <summary>The gRPC address clients dial, e.g. "http://127.0.0.1:7878" (port 0 resolved).</summary>
    public string Address { get; }

    /// <summary>
    /// Starts a server. Loopback and a free port unless told otherwise; logging off unless
    /// <paramref name="configureBuilder"/> adds providers (it may also register services, such as
    /// an <c>IShareStore</c> to use instead of the embedded SQLite one).
    /// </summary>
    public static async Task<ShareRpcServerHost> StartAsync(
        Action<ShareRpcServerOptions> configure,
        IPAddress? address = null,
        int port = 0,
        X509Certificate2? tlsCertificate = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddShareRpcServer(configure);
        builder.WebHost.ConfigureKestrel(k => k.ListenShareRpc(address ?? IPAddress.Loopback, port, tlsCertificate));
        configureBuilder?.Invoke(builder);
        var app = builder.Build();
        try
        {
            app.MapShareRpc();
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var listening = new Uri(app.Urls.First()); // after start: the bound addresses, port 0 resolved
        if (tlsCertificate is not null)
        {
            listening = new UriBuilder(listening) { Scheme = Uri.UriSchemeHttps }.Uri;
        }

        return new ShareRpcServerHost(app, listening.ToString().TrimEnd('/'));
    }

    /// <summary>Graceful stop: health NOT_SERVING, streams drained (see docs/server.md).</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => App.StopAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync().ConfigureAwait(false);
        await App.DisposeAsync().ConfigureAwait(false);
    }
}
