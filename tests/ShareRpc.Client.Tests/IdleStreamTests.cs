using ShareRpc.Server.Diagnostics;
using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>
/// The sender keeps its AppendOps stream for <see cref="ShareRpcClientOptions.IdleStreamTimeout"/>
/// once everything is acked (docs/client.md, "Sender"): an op that comes within it rides the same
/// stream; with zero, every op after an idle moment pays for a new one.
/// </summary>
public sealed class IdleStreamTests : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);
    private readonly TempDir _dir = new("idle-stream-");
    private InProcessServer _server = null!;
    private MeterCapture _metrics = null!;

    public async Task InitializeAsync()
    {
        _metrics = new MeterCapture(ShareRpcServerDiagnostics.MeterName, () => _server?.Instance);
        _server = await InProcessServer.StartAsync(dataDirectory: _dir.File("server"));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _metrics.Dispose();
        _dir.Dispose();
    }

    /// <summary>AppendOps streams the server opened so far (each open adds 1 to the open-streams counter).</summary>
    private int AppendStreamsOpened() => _metrics.Values(ServerMetrics.Streams, "kind=append").Count(v => v > 0);

    [Theory]
    [InlineData(60_000, 1)]
    [InlineData(0, 2)]
    public async Task An_op_after_an_idle_moment_reuses_the_stream_while_it_is_kept(int idleStreamTimeoutMs, int streamsExpected)
    {
        await using var client = new ShareRpcClient(new ShareRpcClientOptions
        {
            OutboxPath = _dir.File($"idle-{idleStreamTimeoutMs}.db"),
            IdleStreamTimeout = TimeSpan.FromMilliseconds(idleStreamTimeoutMs),
        });
        var writer = client.OpenWriter(await client.EnsureShareAsync(_server.Address, "idle-" + idleStreamTimeoutMs));
        var first = await writer.PutAsync("c", "a", new byte[] { 1 });
        await first.Acked.WaitAsync(s_patience);

        // Everything is acked; the sender is woken with nothing to seal (the same op again: a retried
        // call, which enqueues nothing) — the moment the stream used to be closed in.
        var again = new Sharerpc.V1.Op { OpId = first.OpId, Put = new Sharerpc.V1.Put { Collection = "c", Key = "a", Value = Google.Protobuf.ByteString.CopyFrom(1) } };
        Assert.Equal(first.Seq, (await writer.EnqueueManyAsync([again]))[0].Seq);
        if (idleStreamTimeoutMs == 0)
        {
            await _metrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=append") == 0, s_patience, "the idle stream to close");
        }

        var second = await writer.PutAsync("c", "b", new byte[] { 2 });
        await second.Acked.WaitAsync(s_patience);
        Assert.Equal(streamsExpected, AppendStreamsOpened());
    }
}
