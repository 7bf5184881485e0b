using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ShareRpc.TestSupport;

/// <summary>
/// A stand-in OpenTelemetry collector for tests: OTLP/HTTP on 127.0.0.1 (POST /v1/traces,
/// /v1/metrics, /v1/logs, protobuf bodies), answering 200 and counting each signal's requests and
/// bytes — enough to show a process exports all three without decoding them.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, (int Requests, long Bytes)> _received = new(StringComparer.Ordinal);

    private OtlpReceiver(WebApplication app) => _app = app;

    /// <summary>http://127.0.0.1:PORT: what <c>--otlp-endpoint</c> takes (with <c>--otlp-protocol http/protobuf</c>).</summary>
    public string Endpoint { get; private set; } = "";

    public static async Task<OtlpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.MapPost("/v1/{signal}", async (string signal, HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            var protobuf = request.ContentType?.StartsWith("application/x-protobuf", StringComparison.Ordinal) == true;
            if (protobuf && body.Length > 0) receiver._received.AddOrUpdate(signal, (1, body.Length), (_, r) => (r.Requests + 1, r.Bytes + body.Length));
            return protobuf ? Results.Ok() : Results.StatusCode(415);
        });
        await app.StartAsync();
        receiver.Endpoint = app.Urls.First().TrimEnd('/');
        return receiver;
    }

    /// <summary>Non-empty protobuf requests received for <paramref name="signal"/> (traces, metrics, logs).</summary>
    public int Requests(string signal) => _received.TryGetValue(signal, out var r) ? r.Requests : 0;

    /// <summary>Waits until each of <paramref name="signals"/> has had a request; throws with what arrived otherwise.</summary>
    public async Task WaitForAsync(TimeSpan timeout, params string[] signals)
    {
        await Wait.UntilAsync(() => signals.All(s => Requests(s) > 0), timeout,
            () => $"OTLP signals {string.Join(", ", signals)} not all received; got: "
                + string.Join(", ", _received.Select(kv => $"{kv.Key}: {kv.Value.Requests} requests, {kv.Value.Bytes} bytes")));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
