using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ShareRpc.Server.Hosting;

// In the namespace of ConfigureKestrel, so that a host needs no using for it.
namespace Microsoft.AspNetCore.Hosting;

/// <summary><c>kestrel.ListenShareRpc(address, port)</c>: an endpoint gRPC clients can reach.</summary>
public static class ShareRpcKestrelExtensions
{
    /// <summary>
    /// Without a certificate: h2c (HTTP/2 with prior knowledge, what gRPC clients send on
    /// http://) and, on the same port, HTTP/1.1 for browsers (the viewer page, gRPC-Web): each
    /// connection is sorted by its first bytes (needs <c>AddShareRpcServer</c>; without it, h2c
    /// only). With a certificate: TLS, ALPN h2 and http/1.1. Either way an HTTP/1.1 gRPC call gets
    /// its 426 answer. Port 0 picks a free port.
    /// </summary>
    public static void ListenShareRpc(this KestrelServerOptions kestrel, IPAddress address, int port, X509Certificate2? tlsCertificate = null)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(address);
        if (tlsCertificate is null && SharedCleartextPort.IsAvailable(kestrel))
        {
            // docs/decisions.md, "HTTP/1.1 and h2c on one cleartext port"
            var shared = new SharedCleartextPort(new IPEndPoint(address, port));
            kestrel.Listen(shared.Http2, listen => listen.Protocols = HttpProtocols.Http2);
            kestrel.Listen(shared.Http1, listen => listen.Protocols = HttpProtocols.Http1);
            return;
        }

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
}
