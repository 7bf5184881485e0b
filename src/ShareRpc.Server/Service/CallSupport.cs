using System.Globalization;
using ShareRpc.Protocol.Refs;
using ShareRpc.Server.Capabilities;
using ShareRpc.Wire;
using ShareRpc.Protocol;

namespace ShareRpc.Server.Service;

/// <summary>Shared by the handlers: error mapping, authentication, the sturdy-ref endpoint.</summary>
internal static class CallSupport
{
    /// <summary>A core error as the wire's RpcException, with <c>sharerpc-reason</c> (and <c>sharerpc-field</c>) trailers.</summary>
    public static RpcException ToRpc(ShareRpcException e)
    {
        var trailers = new Metadata { { Reasons.TrailerName, e.Reason } };
        if (e.Field is not null) trailers.Add(Reasons.FieldTrailerName, e.Field);
        return new RpcException(new Status((StatusCode)(int)e.Status, e.Message), trailers, e);
    }

    /// <summary>Runs a handler body, turning core errors into statuses (never INTERNAL for a client error).</summary>
    public static async Task<T> Guard<T>(Func<Task<T>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            throw ToRpc(e);
        }
    }

    public static async Task Guard(Func<Task> body)
    {
        try
        {
            await body().ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            throw ToRpc(e);
        }
    }

    public static LiveRefClaims Authenticate(ShareEngine engine, ServerCallContext context) =>
        engine.Authenticate(context.RequestHeaders.GetValue("authorization"));

    /// <summary>HOST:PORT for sturdy refs: the configured public endpoint, else the request's :authority.</summary>
    public static RefEndpoint Endpoint(ShareRpcServerOptions options, ServerCallContext context)
    {
        var request = context.HttpContext.Request;
        var tls = options.PublicTls ?? request.IsHttps;
        if (options.PublicEndpoint is { } configured) return RefEndpoint.Parse(configured, tls);
        var host = request.Host.Host;
        if (string.IsNullOrEmpty(host)) host = context.HttpContext.Connection.LocalIpAddress?.ToString() ?? "localhost";
        if (host.Contains(':') && !host.StartsWith('[')) host = "[" + host + "]";
        var port = request.Host.Port ?? context.HttpContext.Connection.LocalPort;
        return RefEndpoint.Parse(host + ":" + port.ToString(CultureInfo.InvariantCulture), tls);
    }
}
