using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

// In the namespace of ConfigureKestrel, so that a host needs no using for it.
namespace Microsoft.AspNetCore.Hosting;

/// <summary><c>kestrel.ListenShareRpc(address, port)</c>: an endpoint gRPC clients can reach.</summary>
public static class ShareRpcKestrelExtensions
{
    /// <summary>
    /// Without a certificate: h2c (HTTP/2 with prior knowledge, what gRPC clients send on
    /// http://). With one: TLS, ALPN h2, and HTTP/1.1 too, so an HTTP/1.1 gRPC call gets its 426
    /// answer and gRPC-Web works. Port 0 picks a free port.
    /// </summary>
    public static void ListenShareRpc(this KestrelServerOptions kestrel, IPAddress address, int port, X509Certificate2? tlsCertificate = null)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(address);
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
