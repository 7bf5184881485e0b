using System.Collections.Concurrent;

namespace ShareRpc.Cli.Demo;

/// <summary>
/// Counts the gRPC calls a client starts, by method (the last path segment), so the demo can
/// show reconnects the SDK otherwise does silently. Wraps the same handler settings the wire
/// uses by default.
/// </summary>
internal sealed class CallCounter() : DelegatingHandler(new SocketsHttpHandler
{
    EnableMultipleHttp2Connections = true,
    UseProxy = false,
    UseCookies = false,
    AllowAutoRedirect = false,
    ConnectTimeout = TimeSpan.FromSeconds(5),
})
{
    private readonly ConcurrentDictionary<string, int> _calls = new(StringComparer.Ordinal);

    public int this[string method] => _calls.GetValueOrDefault(method);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri?.AbsolutePath ?? "";
        _calls.AddOrUpdate(path[(path.LastIndexOf('/') + 1)..], 1, (_, n) => n + 1);
        return base.SendAsync(request, cancellationToken);
    }
}
