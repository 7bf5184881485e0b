using System.Diagnostics;
using ShareRpc.Server.Storage;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>The store contract's part on the store itself: reopening, schema versions, read views, transactions and savepoints, concurrency.</summary>
public abstract partial class StoreContractTests
{
    [Fact]
    public async Task Reopening_the_store_keeps_shares_log_dedupe_producers_and_rejections()
    {
        var (created, _) = await F.CreateShareAsync("k");
        var owner = await F.RedeemAsync(created.SturdyRef);
        var batch = Batch("p", Put(1, "d", "a", "1"), AppendOp(2, "m", "hi"), Put(3, "d", "a", "x", expectedVersion: 9));
        var first = await F.Engine.AppendAsync(owner, batch);

        await F.ReopenAsync();

        var again = await F.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        Assert.Equal((2UL, 1UL), (again.Cursor, again.Epoch));
        var resent = await F.Engine.AppendAsync(owner, batch);
        Assert.Equal([OpStatus.Duplicate, OpStatus.Duplicate, OpStatus.Rejected], resent.Acks.Select(a => a.Status));
        Assert.Equal(first.Acks.Select(a => a.Cursor), resent.Acks.Select(a => a.Cursor));
        Assert.Equal(4UL, (await F.AppendAsync(owner, "p", Put(5, "d", "x", "1"))).ExpectedSeq);
        Assert.Equal(3UL, (await F.AppendAsync(owner, "p", Put(4, "d", "x", "1"))).Acks[0].Cursor);
        var retry = await F.CreateShareAsync("k", SecretOf(created.SturdyRef));
        Assert.Equal((false, created.ShareId), (retry.Response.Created, retry.Response.ShareId));
    }

    [Fact]
    public async Task The_schema_is_versioned_and_a_newer_version_is_refused()
    {
        Assert.Equal(CurrentSchemaVersion, await GetSchemaVersionAsync());
        await SetSchemaVersionAsync(CurrentSchemaVersion + 1);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(OpenStoreAsync);
        Assert.Contains("newer", e.Message);
        await SetSchemaVersionAsync(CurrentSchemaVersion);
        await using var store = await OpenStoreAsync(); // the right version opens again
        await using var reader = await store.BeginReadAsync();
        Assert.Null(await reader.GetShareAsync("nope"));
    }

    [Fact]
    public async Task A_read_view_sees_one_state_while_writes_commit()
    {
        var (owner, _) = await F.NewShareAsync();
        await F.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        await using var view = await F.Engine.Store.BeginReadAsync();
        var before = (await view.GetShareAsync(owner.ShareId))!;
        Assert.Equal(1UL, before.Cursor);

        await F.AppendAsync(owner, "p", Put(2, "d", "b", "2"));

        Assert.Equal(1UL, (await view.GetShareAsync(owner.ShareId))!.Cursor);
        Assert.Empty(await view.ReadLogAsync(before.RowId, 2, 10));
        Assert.Single(await view.ReadDocumentsAsync(before.RowId, null, null, 10));
        await using var fresh = await F.Engine.Store.BeginReadAsync();
        Assert.Equal(2UL, (await fresh.GetShareAsync(owner.ShareId))!.Cursor);
        Assert.Equal(2, (await fresh.ReadLogAsync(before.RowId, 1, 10)).Count);
    }

    [Fact]
    public async Task A_write_that_fails_rolls_back_to_its_savepoint_and_the_others_commit()
    {
        var (owner, _) = await F.NewShareAsync();
        await F.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        var now = F.Clock.GetUtcNow();
        LogEntry Entry(ulong cursor, string opId) => new(cursor, opId, "direct", cursor, OpKind.Put, "d", "k" + cursor, [1, 2, 3], "x", null, [], 1, now);

        await using (var tx = await F.Engine.Store.BeginWriteAsync())
        {
            var share = (await tx.LockShareAsync(owner.ShareId))!;
            // w0: a log row at a cursor that is taken (unique (share, cursor)): it must fail by its release.
            await tx.SavepointAsync("w0");
            Exception? failure = null;
            try
            {
                var row = await tx.AppendLogAsync(share.RowId, Entry(1, NewOpId()));
                await tx.UpsertDocumentAsync(share.RowId, "d", "k1", 1, 1, row, false);
                await tx.ReleaseSavepointAsync("w0");
            }
            catch (Exception e)
            {
                failure = e;
                await tx.RollbackToSavepointAsync("w0");
                await tx.ReleaseSavepointAsync("w0");
            }
            Assert.NotNull(failure);
            // w1: a good write in the same transaction.
            await tx.SavepointAsync("w1");
            var opId = NewOpId();
            var logRow = await tx.AppendLogAsync(share.RowId, Entry(2, opId));
            await tx.UpsertDocumentAsync(share.RowId, "d", "k2", 1, 2, logRow, false);
            await tx.UpdateShareHeadAsync(share.RowId, share.Epoch, 2);
            await tx.ReleaseSavepointAsync("w1");
            // w2: rolled back on purpose after writing.
            await tx.SavepointAsync("w2");
            await tx.AppendLogAsync(share.RowId, Entry(3, NewOpId()));
            await tx.InsertRejectionAsync(share.RowId, NewOpId(), 1, "never");
            await tx.RollbackToSavepointAsync("w2");
            await tx.ReleaseSavepointAsync("w2");
            Assert.Equal(2UL, (await tx.FindOpAsync(share.RowId, opId))!.Cursor); // reads see the transaction's own writes
            await tx.CommitAsync();
        }
        await using var view = await F.Engine.Store.BeginReadAsync();
        var s = (await view.GetShareAsync(owner.ShareId))!;
        Assert.Equal(2UL, s.Cursor);
        var log = await view.ReadLogAsync(s.RowId, 1, 10);
        Assert.Equal([1UL, 2UL], log.Select(e => e.Cursor));
        Assert.Equal([1, 2, 3], log[1].Value);
        var docs = await view.ReadDocumentsAsync(s.RowId, "d", null, 10);
        Assert.Equal(["a", "k2"], docs.Select(d => d.Key));
    }

    [Fact]
    public async Task Nested_savepoints_undo_only_what_came_after_them()
    {
        var (owner, _) = await F.NewShareAsync();
        var now = F.Clock.GetUtcNow();
        LogEntry Entry(ulong cursor) => new(cursor, NewOpId(), "direct", cursor, OpKind.Append, "m", cursor.ToString(), [(byte)cursor], "", null, [], 1, now);
        await using (var tx = await F.Engine.Store.BeginWriteAsync())
        {
            var share = (await tx.LockShareAsync(owner.ShareId))!;
            await tx.SavepointAsync("outer");
            await tx.AppendLogAsync(share.RowId, Entry(1));
            await tx.SavepointAsync("inner");
            await tx.AppendLogAsync(share.RowId, Entry(2));
            await tx.RollbackToSavepointAsync("inner");      // drops cursor 2, keeps 1
            await tx.AppendLogAsync(share.RowId, Entry(2));  // the inner savepoint is still open after ROLLBACK TO
            await tx.ReleaseSavepointAsync("inner");
            Assert.Equal(2, (await tx.ReadLogAsync(share.RowId, 1, 10)).Count);
            await tx.SavepointAsync("third");
            await tx.AppendLogAsync(share.RowId, Entry(3));
            await tx.SavepointAsync("fourth");
            await tx.AppendLogAsync(share.RowId, Entry(4));
            await tx.ReleaseSavepointAsync("fourth");
            await tx.RollbackToSavepointAsync("third");      // drops 3 and the released 4
            await tx.ReleaseSavepointAsync("third");
            await tx.ReleaseSavepointAsync("outer");
            await tx.UpdateShareHeadAsync(share.RowId, share.Epoch, 2);
            await tx.CommitAsync();
        }
        await using var view = await F.Engine.Store.BeginReadAsync();
        var s = (await view.GetShareAsync(owner.ShareId))!;
        Assert.Equal(2UL, s.Cursor);
        Assert.Equal([(1UL, (byte)1), (2UL, (byte)2)], (await view.ReadLogAsync(s.RowId, 1, 10)).Select(e => (e.Cursor, e.Value![0])));
    }

    [Fact]
    public async Task A_transaction_disposed_without_commit_leaves_nothing()
    {
        var (owner, _) = await F.NewShareAsync();
        await using (var tx = await F.Engine.Store.BeginWriteAsync())
        {
            var share = (await tx.LockShareAsync(owner.ShareId))!;
            await tx.AppendLogAsync(share.RowId, new LogEntry(1, NewOpId(), "p", 1, OpKind.Append, "m", "1", [9], "", null, [], 1, F.Clock.GetUtcNow()));
            await tx.UpdateShareHeadAsync(share.RowId, share.Epoch, 1);
            await tx.SetProducerAsync(share.RowId, "p", 1, 1);
            Assert.Equal(1UL, (await tx.GetProducerAsync(share.RowId, "p"))!.LastSeq);
        }
        var r = await F.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        Assert.Equal((BatchStatus.Accepted, 1UL), (r.BatchStatus, r.Acks[0].Cursor));
    }

    [Fact]
    public async Task Concurrent_pipelined_batches_from_many_producers_apply_once_in_per_producer_order()
    {
        var (owner, _) = await F.NewShareAsync();
        const int producers = 4, batches = 12, opsPerBatch = 64;
        var value = new string('x', 1024);
        var sw = Stopwatch.StartNew();
        var acks = await Task.WhenAll(Enumerable.Range(0, producers).Select(async p =>
        {
            var pending = new List<Task<AppendOpsResponse>>();
            ulong seq = 0;
            for (var b = 0; b < batches; b++)
            {
                var ops = Enumerable.Range(0, opsPerBatch).Select(_ => Put(++seq, "p" + p, "k" + seq, value)).ToArray();
                pending.Add(await F.Engine.EnqueueAppendAsync(owner, Batch("prod" + p, ops)));
            }
            return await Task.WhenAll(pending);
        }));
        sw.Stop();
        const int total = producers * batches * opsPerBatch;
        Output.WriteLine($"{GetType().Name}: {total} x 1 KiB puts in {sw.ElapsedMilliseconds} ms = {total / sw.Elapsed.TotalSeconds:F0} ops/s (rough; {F.Engine.Committer.Commits} commits)");
        var applied = acks.SelectMany(a => a).SelectMany(a => a.Acks).ToList();
        Assert.All(applied, a => Assert.Equal(OpStatus.Applied, a.Status));
        Assert.Equal(Enumerable.Range(1, total).Select(i => (ulong)i), applied.Select(a => a.Cursor).Order());
        foreach (var perProducer in acks)
        {
            var cursors = perProducer.SelectMany(a => a.Acks).Select(a => a.Cursor).ToList();
            Assert.Equal(cursors.Order(), cursors); // seq order == cursor order
        }
    }
}
