using Google.Protobuf;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using SQLitePCL;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 13, item 11: compaction is linear in what it removes and runs in slices. The work is
/// measured as SQLite VM instructions (its progress handler), not as time. Slicing is in the contract tests (both engines).
/// </summary>
public sealed class OutboxCompactionTests : IDisposable
{
    private const string Share = "share-1";
    private const string Ref = "sharerpc://127.0.0.1:1/share-1/cap-1#c2VjcmV0";
    private readonly TempDir _dir = new("outbox-compaction-");

    public void Dispose() => _dir.Dispose();

    /// <summary>An outbox with <paramref name="ops"/> acked ops in batches of one op (as a one-at-a-time producer makes them).</summary>
    private async Task<OutboxStore> AckedAsync(string name, int ops, int sliceOps = 2048)
    {
        var outbox = OutboxStore.Open(_dir.File(name), new OutboxOptions { FsyncEveryCommit = false, MaxBatchOps = 1, AckedRetention = TimeSpan.FromMinutes(1), CompactionSliceOps = sliceOps });
        await outbox.EnsureProducerAsync(Share, Ref);
        for (var i = 0; i < ops; i++)
        {
            await outbox.EnqueueAsync(Share, new Op { Put = new Put { Collection = "c", Key = "k" + i, Value = ByteString.CopyFrom(new byte[16]) } });
        }

        while (await outbox.SealNextBatchAsync(Share) is { } batch)
        {
            var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted };
            response.Acks.AddRange(batch.Parse().Ops.Select(o => new OpAck { OpId = o.OpId, Status = OpStatus.Applied, Cursor = o.Seq }));
            await outbox.RecordAckAsync(Share, response);
        }

        return outbox;
    }

    /// <summary>SQLite VM instructions (in hundreds) that <paramref name="work"/> runs on the outbox's connection.</summary>
    private static async Task<long> WorkAsync(OutboxStore outbox, Func<Task> work)
    {
        long steps = 0;
        raw.sqlite3_progress_handler(outbox.Connection.Handle, 100, _ => { Interlocked.Increment(ref steps); return 0; }, null);
        try
        {
            await work();
        }
        finally
        {
            raw.sqlite3_progress_handler(outbox.Connection.Handle, 0, null, null);
        }

        return steps;
    }

    [Fact]
    public async Task Compaction_work_grows_with_what_it_removes_not_with_its_square()
    {
        var due = DateTimeOffset.UtcNow.AddHours(1);
        await using var small = await AckedAsync("small.db", 1000);
        await using var large = await AckedAsync("large.db", 4000);

        // Nothing due yet (the append at drain, with an hour of retention): a look at one slice, whatever the size.
        var idleSmall = await WorkAsync(small, () => small.CompactAsync(DateTimeOffset.UtcNow));
        var idleLarge = await WorkAsync(large, () => large.CompactAsync(DateTimeOffset.UtcNow));
        Assert.True(idleLarge <= idleSmall * 1.5 + 10, $"nothing to remove cost {idleSmall} and {idleLarge} (×100 instructions)");

        int removedSmall = 0, removedLarge = 0;
        var workSmall = await WorkAsync(small, async () => removedSmall = await small.CompactAsync(due));
        var workLarge = await WorkAsync(large, async () => removedLarge = await large.CompactAsync(due));
        Assert.Equal((1000, 4000), (removedSmall, removedLarge));
        // Linear: 4x the ops cost about 4x (quadratic, as before: 16x).
        Assert.True(workLarge < workSmall * 6, $"removing 1,000 ops cost {workSmall}, 4,000 cost {workLarge} (×100 instructions)");
        Assert.Equal(0, (await large.GetStatusAsync(Share)).PendingOps);
    }
}
