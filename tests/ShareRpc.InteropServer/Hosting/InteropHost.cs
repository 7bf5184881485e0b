using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ShareRpc.InteropServer.Services;
using ShareRpc.Wire;

namespace ShareRpc.InteropServer.Hosting;

/// <summary>The interop TestService on Kestrel, listening on 127.0.0.1 (h2c, or TLS with a certificate).</summary>
public sealed class InteropHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private InteropHost(WebApplication app, int port, X509Certificate2? certificate)
    {
        _app = app;
        Port = port;
        Certificate = certificate;
    }

    /// <summary>The port bound (the one picked by the OS when 0 was asked).</summary>
    public int Port { get; }

    /// <summary>The TLS certificate, or null for h2c.</summary>
    public X509Certificate2? Certificate { get; }

    /// <summary>"http://127.0.0.1:PORT", or "https://127.0.0.1:PORT" with TLS (the certificate names localhost and 127.0.0.1).</summary>
    public string Address => Certificate is null ? $"http://127.0.0.1:{Port}" : $"https://127.0.0.1:{Port}";

    /// <summary>Starts the host; returns once it accepts connections.</summary>
    /// <param name="port">Port on 127.0.0.1; 0 picks a free one.</param>
    /// <param name="tlsCertificate">Serve TLS (ALPN h2) with this certificate; null for h2c.</param>
    /// <param name="configureLogging">Optional logging set-up; by default nothing is logged.</param>
    public static async Task<InteropHost> StartAsync(
        int port, X509Certificate2? tlsCertificate = null, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(InteropHost).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        configureLogging?.Invoke(builder.Logging);
        builder.Services.AddGrpcWire(o => o.EnableDetailedErrors = true);
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(IPAddress.Loopback, port, tlsCertificate));

        var app = builder.Build();
        foreach (var service in InteropServices.Create())
        {
            app.MapGrpcService(service);
        }

        await app.StartAsync(cancellationToken);
        try
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
            var first = addresses?.FirstOrDefault()
                ?? throw new InvalidOperationException("Kestrel reported no bound address.");
            return new InteropHost(app, new Uri(first).Port, tlsCertificate);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>Completes when the host is asked to stop (Ctrl+C, SIGTERM).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}
