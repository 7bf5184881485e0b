using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ShareRpc.Wire.Server.Internal;

namespace ShareRpc.Wire;

/// <summary>Hosting: register options, map services, listen.</summary>
public static class GrpcWireExtensions
{
    private static readonly ConditionalWeakTable<IEndpointRouteBuilder, object> FallbackMapped = new();

    public static IServiceCollection AddGrpcWire(this IServiceCollection services, Action<GrpcServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddOptions<GrpcServerOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.Validate(o =>
        {
            o.Validate();
            return true;
        }).ValidateOnStart();
        return services;
    }

    /// <summary>
    /// Maps every method of the service to its path, plus (once per app) a fallback that answers
    /// any other path with UNIMPLEMENTED.
    /// </summary>
    public static IEndpointConventionBuilder MapGrpcService(this IEndpointRouteBuilder endpoints, ServerServiceDefinition service)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(service);
        var sp = endpoints.ServiceProvider;
        var options = sp.GetService<IOptions<GrpcServerOptions>>()?.Value ?? new GrpcServerOptions();
        options.Validate();
        var logger = sp.GetService<ILoggerFactory>()?.CreateLogger("ShareRpc.Wire.Server") ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        var stopping = sp.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
        var runtime = new GrpcServerRuntime(options, logger, stopping);

        var builders = new List<IEndpointConventionBuilder>();
        foreach (var m in service.Methods)
        {
            builders.Add(endpoints.Map(m.FullName, m.CreateRequestDelegate(runtime)).WithDisplayName("gRPC " + m.FullName));
        }

        lock (FallbackMapped)
        {
            if (!FallbackMapped.TryGetValue(endpoints, out _))
            {
                FallbackMapped.Add(endpoints, new object());
                endpoints.MapFallback("{**path}", UnimplementedHandler.HandleAsync).WithDisplayName("gRPC unimplemented");
            }
        }

        return new CompositeConventionBuilder(builders);
    }

    /// <summary>
    /// Listens for gRPC: without a certificate an h2c endpoint (HTTP/2 only: Http1AndHttp2 would
    /// silently serve HTTP/1.1 without TLS); with one a TLS endpoint offering h2 and http/1.1 by
    /// ALPN, so an HTTP/1.1 client gets a 426 answer instead of a broken connection.
    /// </summary>
    public static void ListenGrpc(this KestrelServerOptions kestrel, IPAddress address, int port, X509Certificate2? tlsCertificate = null)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ConfigureGrpcLimits(kestrel);
        kestrel.Listen(address, port, listen =>
        {
            if (tlsCertificate is null)
            {
                listen.Protocols = HttpProtocols.Http2;
            }
            else
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(tlsCertificate);
            }
        });
    }

    /// <summary>Limits that suit long gRPC streams; also applied by <see cref="ListenGrpc"/>.</summary>
    public static void ConfigureGrpcLimits(KestrelServerOptions kestrel)
    {
        // A stream idle between messages is not a slow reader; this limit exists only server-wide.
        kestrel.Limits.MinResponseDataRate = null;
        // Larger receive windows keep a pipelined uploader from stalling on WINDOW_UPDATE round trips.
        kestrel.Limits.Http2.InitialConnectionWindowSize = 8 * 1024 * 1024;
        kestrel.Limits.Http2.InitialStreamWindowSize = 4 * 1024 * 1024;
    }

    /// <summary>The addresses the server listens on once started (port 0 resolved).</summary>
    public static IReadOnlyList<Uri> GetListeningAddresses(this WebApplication app)
    {
        var server = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>();
        var feature = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>();
        return feature?.Addresses.Select(a => new Uri(a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal))).ToArray() ?? Array.Empty<Uri>();
    }

    private sealed class CompositeConventionBuilder : IEndpointConventionBuilder
    {
        private readonly List<IEndpointConventionBuilder> _builders;

        public CompositeConventionBuilder(List<IEndpointConventionBuilder> builders) => _builders = builders;

        public void Add(Action<EndpointBuilder> convention)
        {
            foreach (var b in _builders)
            {
                b.Add(convention);
            }
        }
    }
}
