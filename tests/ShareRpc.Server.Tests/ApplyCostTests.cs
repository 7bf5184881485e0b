using System.Diagnostics;
using ShareRpc.Server.Apply;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage;
using Sharerpc.V1;
using Xunit.Abstractions;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Issue 13, item 3: one batch stalled every write on the server. 1,024 appends into 1,024
/// collections cost about a million document lookups inside the single writer's transaction (every
/// append collection × every cursor the batch could reach), and with 16 such batches queued a
/// one-op write on another share waited for all of them. Now the apply path looks up one predicted
/// key per op, and groups take shares in turn, bounded by MaxOpsPerCommit / MaxBytesPerCommit.
/// </summary>
public sealed class ApplyCostTests(ITestOutputHelper output) : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture(o =>
        {
            o.FsyncEveryCommit = false;
            o.MaxOpsPerCommit = 1024; // one amplifying batch per group
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private static AppendOpsRequest Amplifying(string producer, ulong firstSeq, int n = 1024) =>
        Batch(producer, Enumerable.Range(0, n).Select(i => AppendOp(firstSeq + (ulong)i, "c" + i, "x")).ToArray());

    [Fact]
    public async Task A_batch_of_1024_appends_into_1024_collections_looks_up_1024_keys_not_a_million()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "k", "v"));
        var before = _f.Engine.Stats.DocumentKeysLookedUp;

        var ack = await _f.Engine.AppendAsync(owner, Amplifying("p", 2));

        Assert.All(ack.Acks, a => Assert.Equal(OpStatus.Applied, a.Status));
        Assert.Equal(1025UL, ack.Cursor);
        Assert.Equal(1024, _f.Engine.Stats.DocumentKeysLookedUp - before); // was 1,024 × 1,024
        Assert.Equal(0, _f.Engine.Stats.Mispredicted);
    }

    [Fact]
    public async Task A_rejection_that_shifts_later_appends_costs_one_point_lookup_each_and_keeps_versions_right()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "m", "3", "a put on the key the third op will land on"));
        var before = _f.Engine.Stats.DocumentKeysLookedUp;

        // The conflict is only found while applying: the two appends land one cursor earlier than predicted.
        var ack = await _f.AppendAsync(owner, "p", Put(2, "m", "x", "v", expectedVersion: 99), AppendOp(3, "m", "a"), AppendOp(4, "m", "b"));

        Assert.Equal(OpStatus.Rejected, ack.Acks[0].Status);
        Assert.Equal((OpStatus.Applied, 2UL, 1UL), (ack.Acks[1].Status, ack.Acks[1].Cursor, ack.Acks[1].Version));
        Assert.Equal((OpStatus.Applied, 3UL, 2UL), (ack.Acks[2].Status, ack.Acks[2].Cursor, ack.Acks[2].Version)); // "m/3" existed: version 2
        Assert.Equal(1, _f.Engine.Stats.Mispredicted); // key "2": nobody predicted it; "3" was looked up for the first append
        Assert.True(_f.Engine.Stats.DocumentKeysLookedUp - before <= 2 * 3);
    }

    [Fact]
    public async Task Sixteen_queued_amplifying_batches_delay_a_write_on_another_share_by_one_group_not_all_of_them()
    {
        var (attacker, _) = await _f.NewShareAsync();
        var (honest, _) = await _f.NewShareAsync();
        await _f.Engine.AppendAsync(attacker, Amplifying("warm-up", 1)); // JIT and caches warm: groups take alike times

        // Every write counts the amplifying batches that ran before it (inside the committer, so the
        // count does not depend on when this test's continuations get a thread).
        var ran = 0;
        var ranBeforeHonest = -1;
        var ranWhenHonestCommitted = -1;
        Func<IShareTransaction, CancellationToken, Task<BatchOutcome>> Counted(LiveRefClaims who, AppendOpsRequest batch, bool honestWrite) => async (tx, ct) =>
        {
            if (honestWrite) ranBeforeHonest = ran;
            else ran++;
            return await BatchApplier.ApplyAsync(tx, who, batch, _f.Clock.GetUtcNow(), ct);
        };
        _f.Engine.Committer.Committed += _ =>
        {
            if (ranBeforeHonest >= 0 && ranWhenHonestCommitted < 0) ranWhenHonestCommitted = ran;
        };

        // Everything is queued before the committer takes its first group.
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = _f.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        var flood = new List<Task<BatchOutcome>>();
        for (var b = 0; b < 16; b++)
        {
            var batch = Amplifying("attacker", (ulong)b * 1024 + 1);
            flood.Add(await _f.Engine.Committer.EnqueueAsync(Counted(attacker, batch, false), default, attacker.ShareId, batch.Ops.Count, batch.CalculateSize()));
        }
        var one = Batch("honest", Put(1, "d", "k", "v"));
        var write = await _f.Engine.Committer.EnqueueAsync(Counted(honest, one, true), default, honest.ShareId, 1, one.CalculateSize());

        var clock = Stopwatch.StartNew();
        gate.SetResult();
        await blocker;
        var outcome = await write;
        var honestMs = clock.Elapsed.TotalMilliseconds;
        await Task.WhenAll(flood);
        var floodMs = clock.Elapsed.TotalMilliseconds;
        output.WriteLine($"one-op write on another share: committed after {ranWhenHonestCommitted} of 16 amplifying batches ({honestMs:0} ms); all 16: {floodMs:0} ms");

        Assert.Equal(OpStatus.Applied, outcome.Response.Acks[0].Status);
        Assert.All(flood, f => Assert.All(f.Result.Response.Acks, a => Assert.Equal(OpStatus.Applied, a.Status)));
        // Shares take turns by cost and a group holds at most MaxOpsPerCommit ops: the honest write
        // commits in the first group or the next, with at most one amplifying batch. First come, first
        // served, in one group of up to 256 writes, it committed with all sixteen.
        Assert.InRange(ranBeforeHonest, 0, 1);
        Assert.InRange(ranWhenHonestCommitted, 0, 1);
    }
}
