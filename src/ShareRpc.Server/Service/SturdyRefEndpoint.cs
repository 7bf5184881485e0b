using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using ShareRpc.Server.Capabilities;

namespace ShareRpc.Server.Service;

/// <summary>The HOST:PORT written into the sturdy refs a call mints (CreateShare, DelegateCapability).</summary>
internal static class SturdyRefEndpoint
{
    /// <summary>
    /// The configured <see cref="ShareRpcServerOptions.PublicEndpoint"/> (validated at start), else
    /// the address this server is bound to on the call's connection: its local IP and port. Never the
    /// request's <c>:authority</c>: that is the client's to choose, and a ref minted for one holder
    /// and handed to another would then send its secret wherever the first one said (and
    /// <c>localhost:0</c> there failed the call). Behind a proxy or a port-forward, set PublicEndpoint.
    /// </summary>
    public static RefEndpoint For(ShareRpcServerOptions options, ServerCallContext context)
    {
        var http = context.GetHttpContext();
        var tls = options.PublicTls ?? http.Request.IsHttps;
        if (options.PublicEndpoint is { } configured) return RefEndpoint.Parse(configured, tls);
        var connection = http.Connection;
        if (connection.LocalIpAddress is not { } local || connection.LocalPort is < 1 or > 65535)
        {
            // Only a host without sockets (an in-memory test server) gets here: the server's configuration, not the client, is at fault.
            throw new InvalidOperationException("the server does not know the address it is bound to: set ShareRpcServerOptions.PublicEndpoint");
        }
        return new RefEndpoint(Host(local), connection.LocalPort, tls);
    }

    private static string Host(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return address.AddressFamily == AddressFamily.InterNetworkV6
            ? "[" + new IPAddress(address.GetAddressBytes()) + "]" // without a %scope: it is not part of a URI host
            : address.ToString();
    }
}
