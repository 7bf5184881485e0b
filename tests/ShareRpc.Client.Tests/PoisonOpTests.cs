using System.Text;
using Grpc.Core;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 13, item 9: an op the server refuses at call level is set aside with its reason, the ops
/// behind it flow (renumbered on the wire, once each), and the application drops or retries it. On each
/// outbox engine (one subclass per engine, below).
/// </summary>
public abstract class PoisonOpTests : IAsyncLifetime
{
    private const int TightValueBytes = 100;
    private readonly TempDir _dir = new("poison-");
    private readonly int _port = Ports.Free();
    private readonly List<InProcessServer> _stopped = [];
    private InProcessServer _server = null!;

    public async Task InitializeAsync() => _server = await StartServerAsync(tight: true);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        foreach (var s in _stopped)
        {
            await s.DisposeAsync();
        }

        _dir.Dispose();
    }

    /// <summary>Stops the server (its data stays) and starts it again on the same port and data with new limits.</summary>
    private async Task RestartAsync(bool tight)
    {
        await _server.StopAsync();
        _stopped.Add(_server);
        _server = await StartServerAsync(tight);
    }

    /// <summary>A server on a fixed port and data dir; "tight" refuses values over 100 bytes (the client allows 1 MiB).</summary>
    private Task<InProcessServer> StartServerAsync(bool tight) =>
        InProcessServer.StartAsync(o => o.Limits.MaxValueBytes = tight ? TightValueBytes : 1024 * 1024, _port, _dir.File("server"));

    /// <summary>The engine of the client's outbox.</summary>
    internal abstract OutboxEngine Engine { get; }

    private ShareRpcClient NewClient() => new(new ShareRpcClientOptions
    {
        OutboxPath = _dir.File("outbox.db"),
        OutboxEngine = Engine,
        InitialBackoff = TimeSpan.FromMilliseconds(10),
        MaxBackoff = TimeSpan.FromMilliseconds(200),
        Outbox = new OutboxOptions { MaxBatchOps = 4 },
    });

    private static Op Put(string key, int valueBytes) => new()
    {
        OpId = Guid.CreateVersion7().ToString(),
        Put = new Put { Collection = "c", Key = key, Value = Google.Protobuf.ByteString.CopyFrom(Encoding.UTF8.GetBytes(new string('v', valueBytes))) },
    };

    /// <summary>
    /// Ops written straight to the outbox before the writer starts (as an older client, or one whose
    /// limits are looser than the server's, would have): the sender seals them four to a batch and
    /// sends the batches pipelined, so the poison ops sit inside batches with more sent behind them.
    /// </summary>
    private static async Task<(ShareWriter Writer, List<Op> Ops)> EnqueueAsync(ShareRpcClient client, string sturdy, params int[] valueBytes)
    {
        var shareId = SturdyRef.Parse(sturdy).ShareId;
        await client.Outbox.EnsureProducerAsync(shareId, sturdy);
        var ops = new List<Op>();
        for (var i = 0; i < valueBytes.Length; i++)
        {
            var op = Put("k" + i, valueBytes[i]);
            await client.Outbox.EnqueueAsync(shareId, op);
            ops.Add(op);
        }

        return (client.OpenWriter(sturdy), ops);
    }

    [Fact]
    public async Task A_poison_op_is_set_aside_with_its_reason_and_every_op_behind_it_is_applied_once_in_order()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "session-poison");
        var setAside = new List<PoisonOp>();
        // Ops 2 and 9 are over the server's 100 bytes: the first sits in the first batch, behind it seven
        // batches' worth of ops were in flight when it was refused.
        var (writer, ops) = await EnqueueAsync(client, sturdy, 10, 10, 200, 10, 10, 10, 10, 10, 10, 300, 10, 10);
        writer.PoisonOpSetAside += (_, p) => { lock (setAside) setAside.Add(p); };

        await writer.FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));

        var poisonIds = new[] { ops[2].OpId, ops[9].OpId };
        var log = await ProcessTests.ReadLogAsync(client, sturdy);
        Assert.Equal(ops.Select(o => o.OpId).Except(poisonIds), log.Select(l => l.Op.OpId));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (ulong)i), log.Select(l => l.Op.Seq)); // no gap on the wire
        var poison = await writer.GetPoisonOpsAsync();
        Assert.Equal(poisonIds, poison.Select(p => p.OpId));
        Assert.All(poison, p =>
        {
            Assert.Equal(StatusCode.ResourceExhausted, p.Status);
            Assert.Equal("limit", p.Reason);
            Assert.Equal("put.value", p.Field);
            Assert.Contains("exceeds MaxValueBytes = 100 bytes", p.Detail);
        });
        lock (setAside)
        {
            Assert.Equal(poisonIds, setAside.Select(p => p.OpId));
        }

        var status = await client.Outbox.GetStatusAsync(writer.ShareId);
        Assert.Equal((0L, 2L), (status.PendingOps, status.PoisonOps));
        Assert.Null(status.StoppedReason);
        Assert.False((await writer.GetProgressAsync()).Stopped);
    }

    [Fact]
    public async Task The_ack_of_a_poison_op_faults_with_the_refusal_and_the_others_complete()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "session-poison-acks");
        var writer = client.OpenWriter(sturdy);
        var before = await writer.PutAsync("c", "a", new byte[10]);
        var poison = await writer.PutAsync("c", "b", new byte[500]);
        var after = await writer.PutAsync("c", "c", new byte[10]);
        await writer.FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));

        var refusal = await Assert.ThrowsAsync<ShareRpcCallException>(() => poison.Acked);
        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Contains(poison.OpId, refusal.Message);
        Assert.Equal(OpStatus.Applied, (await before.Acked).Status);
        var last = await after.Acked;
        Assert.Equal((OpStatus.Applied, 2UL), (last.Status, last.Cursor));
    }

    [Fact]
    public async Task A_retried_poison_op_goes_again_at_the_end_with_its_op_id_and_a_dropped_one_never_goes()
    {
        string sturdy;
        List<Op> ops;
        await using (var client = NewClient())
        {
            sturdy = await client.EnsureShareAsync(_server.Address, "session-poison-retry");
            (var writer, ops) = await EnqueueAsync(client, sturdy, 10, 200, 10, 300, 10);
            await writer.FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(2, (await writer.GetPoisonOpsAsync()).Count);
        }

        // The server's limit is raised (a restart with a new configuration): one poison op is retried, one dropped.
        await RestartAsync(tight: false);
        await using var again = NewClient();
        var resumed = again.OpenWriter(sturdy);
        Assert.Null(await resumed.RetryPoisonOpAsync("no-such-op"));
        var retried = await resumed.RetryPoisonOpAsync(ops[1].OpId);
        Assert.True(await resumed.DropPoisonOpAsync(ops[3].OpId));
        Assert.False(await resumed.DropPoisonOpAsync(ops[3].OpId));
        var next = await resumed.PutAsync("c", "after-retry", new byte[10]);
        await resumed.FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(ops[1].OpId, retried!.OpId);
        Assert.Equal(OpStatus.Applied, (await retried.Acked).Status);
        var log = await ProcessTests.ReadLogAsync(again, sturdy);
        Assert.Equal(new[] { ops[0].OpId, ops[2].OpId, ops[4].OpId, ops[1].OpId, next.OpId }, log.Select(l => l.Op.OpId));
        Assert.Equal(Enumerable.Range(1, 5).Select(i => (ulong)i), log.Select(l => l.Op.Seq));
        Assert.Empty(await resumed.GetPoisonOpsAsync());
        Assert.Equal(0, (await again.Outbox.GetStatusAsync(resumed.ShareId)).PendingOps);
    }
}

public sealed class SqlitePoisonOpTests : PoisonOpTests
{
    internal override OutboxEngine Engine => OutboxEngine.Sqlite;
}

public sealed class LiteDbPoisonOpTests : PoisonOpTests
{
    internal override OutboxEngine Engine { get; } = new ShareRpc.Client.LiteDb.LiteDbOutboxEngine();
}
