using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class AppendTests : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private async Task<IReadOnlyList<Storage.LogEntry>> LogAsync(string shareId)
    {
        await using var r = await _f.Engine.Store.BeginReadAsync();
        var share = await r.GetShareAsync(shareId);
        return await r.ReadLogAsync(share!.RowId, 1, 100_000);
    }

    private Task<GetSnapshotResponse> SnapshotAsync(Capabilities.LiveRefClaims c, string collection = "") =>
        _f.Engine.GetSnapshotAsync(c, new GetSnapshotRequest { Collection = collection, PageSize = 1000 });

    [Fact]
    public async Task Applied_ops_get_gap_free_cursors_from_1_and_versions()
    {
        var (owner, _) = await _f.NewShareAsync();
        var ack = await _f.AppendAsync(owner, "p", Put(1, "docs", "a", "1"), Put(2, "docs", "a", "2"), AppendOp(3, "msgs", "hello"), Delete(4, "docs", "a"));
        Assert.Equal(BatchStatus.Accepted, ack.BatchStatus);
        Assert.Equal(4UL, ack.Cursor);
        Assert.All(ack.Acks, a => Assert.Equal(OpStatus.Applied, a.Status));
        Assert.Equal([1UL, 2, 3, 4], ack.Acks.Select(a => a.Cursor));
        Assert.Equal([1UL, 2, 1, 3], ack.Acks.Select(a => a.Version));

        var ack2 = await _f.AppendAsync(owner, "p", Put(5, "docs", "b", "x"));
        Assert.Equal(5UL, ack2.Acks[0].Cursor);
        var log = await LogAsync(owner.ShareId);
        Assert.Equal([1UL, 2, 3, 4, 5], log.Select(e => e.Cursor));

        // Append's key is its cursor in decimal; the deleted document is gone.
        var snap = await SnapshotAsync(owner);
        Assert.Equal(5UL, snap.Cursor);
        Assert.Equal([("docs", "b", "x"), ("msgs", "3", "hello")], snap.Documents.Select(d => (d.Collection, d.Key, d.Value.ToStringUtf8())));
    }

    [Fact]
    public async Task Lost_response_resend_of_the_same_batch_is_all_duplicate_with_original_cursors()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "other", Put(1, "x", "y", "z")); // so cursors don't start at the batch
        var batch = Batch("p", Put(1, "docs", "a", "v1"), AppendOp(2, "msgs", "m"), Put(3, "docs", "a", "v2", expectedVersion: 1));
        var first = await _f.Engine.AppendAsync(owner, batch);
        var logBefore = await LogAsync(owner.ShareId);
        var snapBefore = await SnapshotAsync(owner);

        var resent = await _f.Engine.AppendAsync(owner, batch.Clone()); // the same bytes, as after a lost ack
        Assert.Equal(BatchStatus.Accepted, resent.BatchStatus);
        Assert.All(resent.Acks, a => Assert.Equal(OpStatus.Duplicate, a.Status));
        Assert.Equal(first.Acks.Select(a => (a.OpId, a.Cursor, a.Version)), resent.Acks.Select(a => (a.OpId, a.Cursor, a.Version)));
        Assert.Equal(first.Cursor, resent.Cursor);
        Assert.Equal(logBefore, await LogAsync(owner.ShareId), new LogEntryComparer());
        Assert.Equal(snapBefore, await SnapshotAsync(owner));

        // The next seq still follows on.
        var next = await _f.AppendAsync(owner, "p", Put(4, "docs", "c", "n"));
        Assert.Equal(first.Cursor + 1, next.Acks[0].Cursor);
    }

    [Fact]
    public async Task Depends_on_counts_earlier_batches_and_earlier_ops_of_the_batch_only()
    {
        var (owner, _) = await _f.NewShareAsync();
        var a = NewOpId();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1", opId: a));
        var b = NewOpId();
        var ack = await _f.AppendAsync(owner, "p",
            Put(2, "d", "b", "1", opId: b, dependsOn: a),            // earlier batch: ok
            Put(3, "d", "c", "1", dependsOn: b),                     // earlier in this batch: ok
            Put(4, "d", "e", "1", dependsOn: "never-sent"),          // missing
            Put(5, "d", "f", "1", dependsOn: "later-op"),            // later in the batch: not yet
            Put(6, "d", "g", "1", opId: "later-op"));
        Assert.Equal([OpStatus.Applied, OpStatus.Applied, OpStatus.Rejected, OpStatus.Rejected, OpStatus.Applied], ack.Acks.Select(x => x.Status));
        Assert.Equal(RejectReason.DependencyMissing, ack.Acks[2].RejectReason);
        Assert.Contains("never-sent", ack.Acks[2].Detail);
        Assert.Equal(RejectReason.DependencyMissing, ack.Acks[3].RejectReason);
        Assert.Equal([2UL, 3, 0, 0, 4], ack.Acks.Select(x => x.Cursor));

        // A rejected op keeps its result forever: resending it (even now that its dependency exists) is the same rejection.
        var again = await _f.AppendAsync(owner, "p", Put(5, "d", "f", "1", opId: ack.Acks[3].OpId, dependsOn: "later-op"));
        Assert.Equal(OpStatus.Rejected, again.Acks[0].Status);
        Assert.Equal(RejectReason.DependencyMissing, again.Acks[0].RejectReason);
        Assert.Equal(4UL, again.Cursor);
        // A dependency on a rejected op is missing too.
        var dep = await _f.AppendAsync(owner, "p", Put(7, "d", "h", "1", dependsOn: ack.Acks[2].OpId));
        Assert.Equal(RejectReason.DependencyMissing, dep.Acks[0].RejectReason);
    }

    [Fact]
    public async Task Expected_version_conflicts_are_rejected_with_the_current_version()
    {
        var (owner, _) = await _f.NewShareAsync();
        var ack = await _f.AppendAsync(owner, "p",
            Put(1, "d", "k", "v1", expectedVersion: 0),   // must not exist: ok → v1
            Put(2, "d", "k", "v2", expectedVersion: 1),   // ok → v2
            Put(3, "d", "k", "v3", expectedVersion: 1),   // stale
            Put(4, "d", "k", "v3", expectedVersion: 0),   // exists
            Delete(5, "d", "k", expectedVersion: 5),      // wrong
            Delete(6, "d", "k", expectedVersion: 2),      // ok → v3 (tombstone)
            Put(7, "d", "k", "again", expectedVersion: 0)); // deleted counts as absent → v4
        Assert.Equal([OpStatus.Applied, OpStatus.Applied, OpStatus.Rejected, OpStatus.Rejected, OpStatus.Rejected, OpStatus.Applied, OpStatus.Applied],
            ack.Acks.Select(a => a.Status));
        Assert.All(new[] { ack.Acks[2], ack.Acks[3], ack.Acks[4] }, a =>
        {
            Assert.Equal(RejectReason.VersionConflict, a.RejectReason);
            Assert.Equal(2UL, a.Version);
        });
        Assert.Equal([1UL, 2, 3, 4], ack.Acks.Where(a => a.Status == OpStatus.Applied).Select(a => a.Version));
        Assert.Equal([1UL, 2, 3, 4], ack.Acks.Where(a => a.Status == OpStatus.Applied).Select(a => a.Cursor));
        var snap = await SnapshotAsync(owner);
        var doc = Assert.Single(snap.Documents);
        Assert.Equal(("again", 4UL, 4UL), (doc.Value.ToStringUtf8(), doc.Version, doc.Cursor));
    }

    [Fact]
    public async Task Seq_gap_refuses_the_whole_batch_with_expected_seq()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"));
        var gap = await _f.AppendAsync(owner, "p", Put(4, "d", "c", "1"), Put(5, "d", "e", "1"));
        Assert.Equal(BatchStatus.OutOfOrder, gap.BatchStatus);
        Assert.Equal(3UL, gap.ExpectedSeq);
        Assert.Empty(gap.Acks);
        Assert.Equal(2UL, gap.Cursor);
        Assert.Equal(2, (await LogAsync(owner.ShareId)).Count);

        // Other producers are independent; a new producer must start at 1.
        var fresh = await _f.AppendAsync(owner, "q", Put(2, "d", "z", "1"));
        Assert.Equal((BatchStatus.OutOfOrder, 1UL), (fresh.BatchStatus, fresh.ExpectedSeq));

        // Resending from the gap works, and then the refused batch goes through.
        var fill = await _f.AppendAsync(owner, "p", Put(3, "d", "c", "1"));
        Assert.Equal(3UL, fill.Acks[0].Cursor);
        var after = await _f.AppendAsync(owner, "p", Put(4, "d", "c2", "1"), Put(5, "d", "e", "1"));
        Assert.Equal((BatchStatus.Accepted, 5UL), (after.BatchStatus, after.Cursor));
    }

    [Fact]
    public async Task A_new_op_reusing_an_old_seq_is_rejected_invalid_op()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"));
        var ack = await _f.AppendAsync(owner, "p", Put(2, "d", "c", "other op, same seq"), Put(3, "d", "e", "1"));
        Assert.Equal((OpStatus.Rejected, RejectReason.InvalidOp), (ack.Acks[0].Status, ack.Acks[0].RejectReason));
        Assert.Equal((OpStatus.Applied, 3UL), (ack.Acks[1].Status, ack.Acks[1].Cursor));
    }

    [Fact]
    public async Task Per_producer_cursor_order_equals_seq_order_and_producers_interleave()
    {
        var (owner, _) = await _f.NewShareAsync();
        for (ulong i = 1; i <= 5; i++)
        {
            await _f.AppendAsync(owner, "p", Put(i, "d", "p" + i, "v"));
            await _f.AppendAsync(owner, "q", Put(i, "d", "q" + i, "v"));
        }
        var log = await LogAsync(owner.ShareId);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (ulong)i), log.Select(e => e.Cursor));
        foreach (var producer in new[] { "p", "q" })
            Assert.Equal([1UL, 2, 3, 4, 5], log.Where(e => e.ProducerId == producer).Select(e => e.Seq));
    }

    [Fact]
    public async Task Duplicate_op_id_inside_one_batch_is_applied_once()
    {
        var (owner, _) = await _f.NewShareAsync();
        var id = NewOpId();
        var ack = await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1", opId: id), Put(2, "d", "a", "2", opId: id));
        Assert.Equal([OpStatus.Applied, OpStatus.Duplicate], ack.Acks.Select(a => a.Status));
        Assert.Equal([1UL, 1], ack.Acks.Select(a => a.Cursor));
        Assert.Equal(1UL, ack.Cursor);
    }

    [Fact]
    public async Task Empty_batch_is_accepted_and_changes_nothing()
    {
        var (owner, _) = await _f.NewShareAsync();
        var ack = await _f.AppendAsync(owner, "p");
        Assert.Equal((BatchStatus.Accepted, 0UL, 0), (ack.BatchStatus, ack.Cursor, ack.Acks.Count));
    }

    [Fact]
    public async Task A_large_batch_with_many_dependencies_dedupes_across_lookup_chunks()
    {
        var (owner, _) = await _f.NewShareAsync();
        var ops = new List<Op>();
        for (ulong i = 1; i <= 600; i++)
            ops.Add(i <= 300 ? Put(i, "d", "k" + i, "v", opId: "op-" + i) : Put(i, "d", "k" + i, "v", opId: "op-" + i, dependsOn: ["op-" + (i - 300), "op-" + (i - 1)]));
        var batch = Batch("p", ops.ToArray());
        var first = await _f.Engine.AppendAsync(owner, batch);
        Assert.All(first.Acks, a => Assert.Equal(OpStatus.Applied, a.Status));
        Assert.Equal(600UL, first.Cursor);
        var again = await _f.Engine.AppendAsync(owner, batch);
        Assert.All(again.Acks, a => Assert.Equal(OpStatus.Duplicate, a.Status));
        Assert.Equal(first.Acks.Select(a => a.Cursor), again.Acks.Select(a => a.Cursor));
    }

    private sealed class LogEntryComparer : IEqualityComparer<Storage.LogEntry>
    {
        public bool Equals(Storage.LogEntry? x, Storage.LogEntry? y) =>
            x!.Cursor == y!.Cursor && x.OpId == y.OpId && x.Seq == y.Seq && x.Version == y.Version
            && x.Key == y.Key && (x.Value ?? []).SequenceEqual(y.Value ?? []) && x.DependsOn.SequenceEqual(y.DependsOn);

        public int GetHashCode(Storage.LogEntry obj) => obj.Cursor.GetHashCode();
    }
}
