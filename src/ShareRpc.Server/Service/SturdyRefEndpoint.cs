using System.Globalization;
using Grpc.Core;
using ShareRpc.Server.Capabilities;

namespace ShareRpc.Server.Service;

/// <summary>The HOST:PORT written into the sturdy refs a call mints (CreateShare, DelegateCapability).</summary>
internal static class SturdyRefEndpoint
{
    /// <summary>The configured public endpoint, else the request's <c>:authority</c>.</summary>
    public static RefEndpoint For(ShareRpcServerOptions options, ServerCallContext context)
    {
        var http = context.GetHttpContext();
        var request = http.Request;
        var tls = options.PublicTls ?? request.IsHttps;
        if (options.PublicEndpoint is { } configured) return RefEndpoint.Parse(configured, tls);
        var host = request.Host.Host;
        if (string.IsNullOrEmpty(host)) host = http.Connection.LocalIpAddress?.ToString() ?? "localhost";
        if (host.Contains(':') && !host.StartsWith('[')) host = "[" + host + "]";
        var port = request.Host.Port ?? http.Connection.LocalPort;
        return RefEndpoint.Parse(host + ":" + port.ToString(CultureInfo.InvariantCulture), tls);
    }
}
