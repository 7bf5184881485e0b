using System.Collections.Concurrent;
using System.Diagnostics;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 14: many ops durable in one call (<see cref="ShareWriter.EnqueueManyAsync"/>), and the
/// lingering sender (docs/client.md, "Sender"): ops wait for company only while a batch is in flight.
/// </summary>
public sealed class BatchingTests : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(20);
    private readonly TempDir _dir = new("batching-");
    private InProcessServer _server = null!;

    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync(dataDirectory: _dir.File("server"));

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private static Op Put(string key, string? opId = null) => new()
    {
        OpId = opId ?? "",
        Put = new Put { Collection = "c", Key = key, Value = Google.Protobuf.ByteString.CopyFromUtf8("v-" + key) },
    };

    [Fact]
    public async Task EnqueueMany_makes_every_op_durable_at_consecutive_seqs_and_each_is_applied_once()
    {
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("many.db") });
        var sturdy = await client.EnsureShareAsync(_server.Address, "many");
        var writer = client.OpenWriter(sturdy);
        var first = await writer.PutAsync("c", "before", new byte[1]);

        var given = Enumerable.Range(0, 100).Select(i => Put("k" + i)).ToList();
        var pending = await writer.EnqueueManyAsync(given);

        Assert.Equal(Enumerable.Range(2, 100).Select(i => (ulong)i), pending.Select(p => p.Seq));
        Assert.All(given, op => Assert.Equal("", op.OpId)); // the caller's ops are not changed
        Assert.Equal(100, pending.Select(p => p.OpId).Distinct().Count());
        var outcomes = await Task.WhenAll(pending.Select(p => p.Acked)).WaitAsync(s_patience);
        Assert.All(outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));

        // The same ops again (a call retried after its answer was lost): nothing is enqueued twice.
        var withIds = pending.Select((p, i) => Put("k" + i, p.OpId)).ToList();
        var again = await writer.EnqueueManyAsync(withIds);
        Assert.Equal(pending.Select(p => p.Seq), again.Select(p => p.Seq));
        await writer.FlushAsync().WaitAsync(s_patience);
        var log = await ProcessTests.ReadLogAsync(client, sturdy);
        Assert.Equal(new[] { first.OpId }.Concat(pending.Select(p => p.OpId)), log.Select(l => l.Op.OpId));
    }

    [Fact]
    public async Task EnqueueMany_with_one_op_the_server_would_refuse_names_it_and_makes_none_durable()
    {
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("bad.db") });
        var writer = client.OpenWriter(await client.EnsureShareAsync(_server.Address, "bad"));
        var ops = new[] { Put("a"), Put("b"), new Op { Put = new Put { Collection = "", Key = "k" } } };

        var ex = await Assert.ThrowsAsync<InvalidOpException>(() => writer.EnqueueManyAsync(ops));

        Assert.Equal("ops[2].put.collection", ex.Field);
        Assert.Equal("ops[2].put.collection: must not be empty", ex.Message);
        Assert.Equal(0, (await client.Outbox.GetStatusAsync(writer.ShareId)).PendingOps);
        var tooMany = Enumerable.Range(0, client.Options.Outbox.MaxOpsPerCommit + 1).Select(i => Put("k" + i)).ToList();
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => writer.EnqueueManyAsync(tooMany));
    }

    /// <summary>
    /// With a linger of a minute: the first op (nothing in flight) is sent at once; ops enqueued while
    /// its ack is held wait and travel together, sealed as soon as they fill a batch; the op after them
    /// waits until the batches in flight are acked, then goes at once — nothing waits out the minute.
    /// </summary>
    [Fact]
    public async Task Ops_linger_only_while_a_batch_is_in_flight_and_go_when_a_batch_fills_or_the_link_is_idle()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sent = new ConcurrentQueue<(string Batch, bool Released)>();
        var options = new ShareRpcClientOptions
        {
            OutboxPath = _dir.File("linger.db"),
            Linger = TimeSpan.FromMinutes(1),
            Outbox = new OutboxOptions { MaxBatchOps = 8 },
            Faults = new ClientFaultHooks
            {
                BeforeSend = b =>
                {
                    sent.Enqueue((b, release.Task.IsCompleted));
                    return Task.CompletedTask;
                },
                // The first batch's ack is held: it stays in flight until the test lets it go.
                BeforeRecordAck = b => sent.TryPeek(out var head) && head.Batch == b ? release.Task : Task.CompletedTask,
            },
        };
        await using var client = new ShareRpcClient(options);
        var writer = client.OpenWriter(await client.EnsureShareAsync(_server.Address, "linger"));

        await writer.PutAsync("c", "first", new byte[1]);
        await Wait.UntilAsync(() => sent.Count == 1, s_patience, "the first op, with nothing in flight, is sent at once");

        for (var i = 0; i < 8; i++)
        {
            await writer.PutAsync("c", "full" + i, new byte[1]);
        }

        await Wait.UntilAsync(() => sent.Count == 2, s_patience, "eight ops fill a batch, which is sent although the first is in flight");
        var inFlight = await client.Outbox.GetUnackedBatchesAsync(writer.ShareId);
        Assert.Equal(new[] { 1, 8 }, inFlight.Select(b => b.OpCount));

        var last = await writer.PutAsync("c", "last", new byte[1]);
        release.SetResult();
        await last.Acked.WaitAsync(s_patience);

        Assert.Equal(3, sent.Count);
        Assert.True(sent.Last().Released, "the last op lingered until the batches in flight were acked");
    }

    /// <summary>While a batch stays in flight, an op waits out the linger, then goes alone.</summary>
    [Fact]
    public async Task An_op_waits_at_most_the_linger_while_a_batch_stays_in_flight()
    {
        var linger = TimeSpan.FromMilliseconds(400);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sentAt = new ConcurrentQueue<(string Batch, long At)>();
        var options = new ShareRpcClientOptions
        {
            OutboxPath = _dir.File("bounded.db"),
            Linger = linger,
            Faults = new ClientFaultHooks
            {
                BeforeSend = b =>
                {
                    sentAt.Enqueue((b, Stopwatch.GetTimestamp()));
                    return Task.CompletedTask;
                },
                BeforeRecordAck = b => sentAt.TryPeek(out var head) && head.Batch == b ? release.Task : Task.CompletedTask,
            },
        };
        await using var client = new ShareRpcClient(options);
        var writer = client.OpenWriter(await client.EnsureShareAsync(_server.Address, "bounded"));
        await writer.PutAsync("c", "held", new byte[1]);
        await Wait.UntilAsync(() => sentAt.Count == 1, s_patience, "the first op is sent at once");

        var enqueued = Stopwatch.GetTimestamp();
        await writer.PutAsync("c", "second", new byte[1]);
        await Wait.UntilAsync(() => sentAt.Count == 2, s_patience, "the second op is sent once the linger has passed");
        release.SetResult();
        await writer.FlushAsync().WaitAsync(s_patience);

        var waited = Stopwatch.GetElapsedTime(enqueued, sentAt.Last().At);
        Assert.InRange(waited, linger - TimeSpan.FromMilliseconds(50), s_patience);
    }
}
