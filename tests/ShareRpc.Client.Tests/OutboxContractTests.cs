using Google.Protobuf;
using ShareRpc.Client.LiteDb;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// The outbox store contract (IOutboxStore; docs/client.md, "Outbox stores"): the same assertions on every engine,
/// through one subclass per engine. What only one engine does (SQLite: several processes on one file) is in its subclass.
/// </summary>
public abstract class OutboxContractTests : IDisposable
{
    internal const string Share = "share-1";
    internal const string Ref = "sharerpc://127.0.0.1:1/share-1/cap-1#c2VjcmV0";
    private readonly string _dir = Directory.CreateTempSubdirectory("outbox-").FullName;

    /// <summary>The engine under test.</summary>
    internal abstract OutboxEngine Engine { get; }

    protected string PathOf(string name = "outbox.db") => Path.Combine(_dir, name);

    internal IOutboxStore Open(OutboxOptions? options = null, string name = "outbox.db") => Engine.Open(PathOf(name), options);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static Op Put(string key, int valueBytes = 8) => new()
    {
        Put = new Put { Collection = "docs", Key = key, Value = ByteString.CopyFrom(new byte[valueBytes]) },
    };

    /// <summary>Seals and acks (applied) everything enqueued in <paramref name="outbox"/>.</summary>
    internal static async Task AckAllAsync(IOutboxStore outbox, string share = Share)
    {
        while (await outbox.SealNextBatchAsync(share) is { } batch)
        {
            var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted };
            response.Acks.AddRange(batch.Parse().Ops.Select(o => new OpAck { OpId = o.OpId, Status = OpStatus.Applied, Cursor = o.Seq }));
            await outbox.RecordAckAsync(share, response);
        }
    }

    [Fact]
    public async Task Concurrent_enqueues_get_unique_ids_and_a_gap_free_seq()
    {
        await using var outbox = Open();
        var producer = await outbox.EnsureProducerAsync(Share, Ref);
        Assert.Equal(1UL, producer.NextSeq);
        var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => outbox.EnqueueAsync(Share, Put("k" + i))));
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (ulong)i), results.Select(r => r.Seq).OrderBy(s => s));
        Assert.Equal(200, results.Select(r => r.OpId).Distinct().Count());
        Assert.All(results, r => Assert.Equal(7, Guid.Parse(r.OpId).Version));
        Assert.Equal(201UL, (await outbox.EnsureProducerAsync(Share, Ref)).NextSeq);
    }

    [Fact]
    public async Task A_caller_chosen_op_id_is_kept_and_a_reused_one_is_refused_alone()
    {
        await using var outbox = Open();
        await outbox.EnsureProducerAsync(Share, Ref);
        var op = Put("a");
        op.OpId = "0190d9a8-0000-7000-8000-000000000001";
        Assert.Equal(op.OpId, (await outbox.EnqueueAsync(Share, op)).OpId);
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.EnqueueAsync(Share, op));
        var next = await outbox.EnqueueAsync(Share, Put("b"));
        Assert.Equal(2UL, next.Seq);
    }

    [Fact]
    public async Task Sealing_cuts_batches_by_count_and_bytes_in_seq_order()
    {
        await using var outbox = Open(new OutboxOptions { MaxBatchOps = 3, MaxBatchBytes = 1200 });
        await outbox.EnsureProducerAsync(Share, Ref);
        for (var i = 0; i < 5; i++)
        {
            await outbox.EnqueueAsync(Share, Put("k" + i));
        }

        await outbox.EnqueueAsync(Share, Put("big1", 900));
        await outbox.EnqueueAsync(Share, Put("big2", 900));
        await outbox.EnqueueAsync(Share, Put("big3", 900));

        var b1 = await outbox.SealNextBatchAsync(Share);
        var b2 = await outbox.SealNextBatchAsync(Share);
        var b3 = await outbox.SealNextBatchAsync(Share);
        var b4 = await outbox.SealNextBatchAsync(Share);
        Assert.Null(await outbox.SealNextBatchAsync(Share));
        Assert.Equal((1UL, 3UL), (b1!.FirstSeq, b1.LastSeq));
        Assert.Equal((4UL, 6UL), (b2!.FirstSeq, b2.LastSeq)); // k3, k4, big1: about 1,050 bytes
        Assert.Equal((7UL, 7UL), (b3!.FirstSeq, b3.LastSeq)); // big2 alone: big3 would pass 1,200 bytes
        Assert.Equal((8UL, 8UL), (b4!.FirstSeq, b4.LastSeq));
        var request = b1.Parse();
        Assert.Equal(b1.BatchId, request.BatchId);
        Assert.Equal(new ulong[] { 1, 2, 3 }, request.Ops.Select(o => o.Seq));
        Assert.Equal(new[] { "k0", "k1", "k2" }, request.Ops.Select(o => o.Put.Key));
    }

    [Fact]
    public async Task Unacked_batches_survive_reopening_byte_for_byte()
    {
        SealedBatch[] before;
        await using (var outbox = Open(new OutboxOptions { MaxBatchOps = 2 }))
        {
            await outbox.EnsureProducerAsync(Share, Ref);
            for (var i = 0; i < 5; i++)
            {
                await outbox.EnqueueAsync(Share, Put("k" + i));
            }

            await outbox.SealNextBatchAsync(Share);
            await outbox.SealNextBatchAsync(Share);
            before = (await outbox.GetUnackedBatchesAsync(Share)).ToArray();
        }

        await using (var reopened = Open(new OutboxOptions { MaxBatchOps = 2 }))
        {
            var after = await reopened.GetUnackedBatchesAsync(Share);
            Assert.Equal(before.Select(b => b.BatchId), after.Select(b => b.BatchId));
            Assert.Equal(before.Select(b => Convert.ToHexString(b.RequestBytes)), after.Select(b => Convert.ToHexString(b.RequestBytes)));
            var status = await reopened.GetStatusAsync(Share);
            Assert.Equal(5, status.PendingOps);
            Assert.Equal(2, status.SealedBatches);
            var producers = await reopened.GetProducersAsync();
            Assert.Equal(6UL, Assert.Single(producers).NextSeq);
            // The fifth op is still pending and seals next, after the recovered batches.
            var third = await reopened.SealNextBatchAsync(Share);
            Assert.Equal(5UL, third!.FirstSeq);
        }
    }

    [Fact]
    public async Task An_ack_marks_ops_applied_or_rejected_in_one_step_and_a_repeat_changes_nothing()
    {
        await using var outbox = Open();
        await outbox.EnsureProducerAsync(Share, Ref);
        var a = await outbox.EnqueueAsync(Share, Put("a"));
        var b = await outbox.EnqueueAsync(Share, Put("b"));
        var batch = (await outbox.SealNextBatchAsync(Share))!;
        var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted, Cursor = 10 };
        response.Acks.Add(new OpAck { OpId = a.OpId, Status = OpStatus.Applied, Cursor = 10, Version = 1 });
        response.Acks.Add(new OpAck { OpId = b.OpId, Status = OpStatus.Rejected, RejectReason = RejectReason.VersionConflict, Detail = "expected 3, is 1" });
        var outcomes = await outbox.RecordAckAsync(Share, response);
        Assert.Equal(2, outcomes.Count);
        Assert.Empty(await outbox.RecordAckAsync(Share, response));

        Assert.Equal(OpStatus.Applied, (await outbox.GetOutcomeAsync(a.OpId))!.Status);
        var rejected = (await outbox.GetOutcomeAsync(b.OpId))!;
        Assert.Equal(RejectReason.VersionConflict, rejected.RejectReason);
        Assert.Equal("expected 3, is 1", rejected.Detail);
        var status = await outbox.GetStatusAsync(Share);
        Assert.Equal((0L, 0L, 1L), (status.PendingOps, status.SealedBatches, status.RejectedOps));
        Assert.Empty(await outbox.GetUnackedBatchesAsync(Share));
        Assert.Equal(2UL, (await outbox.GetProducersAsync())[0].AckedSeq);
    }

    [Fact]
    public async Task Compaction_drops_old_acked_ops_and_keeps_rejected_ones()
    {
        await using var outbox = Open(new OutboxOptions { AckedRetention = TimeSpan.FromMinutes(1) });
        await outbox.EnsureProducerAsync(Share, Ref);
        var a = await outbox.EnqueueAsync(Share, Put("a"));
        var b = await outbox.EnqueueAsync(Share, Put("b"));
        var batch = (await outbox.SealNextBatchAsync(Share))!;
        var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted };
        response.Acks.Add(new OpAck { OpId = a.OpId, Status = OpStatus.Applied, Cursor = 1 });
        response.Acks.Add(new OpAck { OpId = b.OpId, Status = OpStatus.Rejected, RejectReason = RejectReason.InvalidOp });
        await outbox.RecordAckAsync(Share, response);

        Assert.Equal(0, await outbox.CompactAsync(DateTimeOffset.UtcNow));
        Assert.Equal(2, await outbox.CompactAsync(DateTimeOffset.UtcNow.AddMinutes(2)));
        Assert.Null(await outbox.GetOutcomeAsync(a.OpId));
        Assert.NotNull(await outbox.GetOutcomeAsync(b.OpId));
    }

    [Fact]
    public async Task A_second_sender_on_the_same_file_gets_a_clear_error_and_the_files_are_owner_only()
    {
        await using var first = Open();
        first.AcquireWriterLock();
        await first.EnsureProducerAsync(Share, Ref);
        await first.EnqueueAsync(Share, Put("a"));
        IOutboxStore? second = null;
        // SQLite lets a second process open the file but not send from it; LiteDB refuses the open itself.
        var ex = Assert.Throws<OutboxInUseException>(() =>
        {
            second = Open();
            second.AcquireWriterLock();
        });
        if (second is not null)
        {
            await second.DisposeAsync();
        }

        Assert.Contains("in use by another process", ex.Message);
        if (!OperatingSystem.IsWindows())
        {
            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(PathOf())!))
            {
                Assert.True(File.GetUnixFileMode(file) == (UnixFileMode.UserRead | UnixFileMode.UserWrite), $"{file} is {File.GetUnixFileMode(file)}");
            }
        }
    }

    [Fact]
    public async Task The_first_create_intent_wins_across_concurrent_callers_and_survives_reopening()
    {
        await using (var outbox = Open())
        {
            var secrets = Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)i, 32).ToArray()).ToArray();
            var intents = await Task.WhenAll(secrets.Select(s => outbox.GetOrAddShareIntentAsync("http://h:1", "session-1", "t", s)));
            Assert.Single(intents.Select(i => Convert.ToHexString(i.OwnerSecret)).Distinct());
            await outbox.SetShareIntentResultAsync("http://h:1", "session-1", "share-9", Ref, ShareIntentState.Created);
        }

        await using var reopened = Open();
        var read = await reopened.GetShareIntentAsync("http://h:1", "session-1");
        Assert.Equal(("share-9", Ref, ShareIntentState.Created), (read!.ShareId, read.SturdyRef, read.State));
        Assert.Null(await reopened.GetShareIntentAsync("http://h:1", "session-2"));
    }

    [Fact]
    public async Task Enqueue_without_a_producer_is_refused()
    {
        await using var outbox = Open();
        await Assert.ThrowsAsync<InvalidOperationException>(() => outbox.EnqueueAsync("unknown", Put("a")));
    }

    [Fact]
    public async Task Bulk_enqueue_is_one_commit_in_order_and_reports_ops_already_here()
    {
        await using var outbox = Open();
        await outbox.EnsureProducerAsync(Share, Ref);
        var first = Put("a");
        first.OpId = "0190d9a8-0000-7000-8000-00000000000a";
        await outbox.EnqueueAsync(Share, first);
        var again = first.Clone();
        again.Seq = 0;
        var ops = new[] { Put("b"), again, Put("c") };
        var results = await outbox.EnqueueBulkAsync(Share, ops);
        Assert.Equal([new BulkEnqueued(2, BulkOutcome.New), new BulkEnqueued(1, BulkOutcome.InOutbox), new BulkEnqueued(3, BulkOutcome.New)], results);
        Assert.Equal(4UL, (await outbox.GetProducersAsync()).Single().NextSeq);

        // All or nothing: an op with no kind refuses the whole call, and takes no seq.
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.EnqueueBulkAsync(Share, [Put("d"), new Op()]));
        Assert.Equal(4UL, (await outbox.GetProducersAsync()).Single().NextSeq);
        var batch = await outbox.SealNextBatchAsync(Share);
        Assert.Equal(["a", "b", "c"], batch!.Parse().Ops.Select(o => o.Put.Key));
    }

    [Fact]
    public async Task A_poison_op_is_set_aside_the_ops_behind_it_are_resealed_with_the_hole_closed_and_it_can_be_retried()
    {
        await using var outbox = Open(new OutboxOptions { MaxBatchOps = 3 });
        await outbox.EnsureProducerAsync(Share, Ref);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await outbox.EnqueueAsync(Share, Put("k" + i))).OpId);
        }

        var head = (await outbox.SealNextBatchAsync(Share))!;
        await outbox.SealNextBatchAsync(Share);
        var refusal = new ShareRpcCallException(new Grpc.Core.Status(Grpc.Core.StatusCode.InvalidArgument, "ops[1].put.value: too big"), []);
        Assert.Null(await outbox.SetAsideAsync(Share, "not-the-head", 1, refusal, "put.value"));
        var poison = (await outbox.SetAsideAsync(Share, head.BatchId, 1, refusal, "put.value"))!;
        Assert.Equal((ids[1], 2UL, "put.value"), (poison.OpId, poison.Seq, poison.Field));
        Assert.Equal(ids[1], Assert.Single(await outbox.GetPoisonOpsAsync(Share)).OpId);
        Assert.Equal(1, (await outbox.GetStatusAsync(Share)).PoisonOps);
        Assert.Empty(await outbox.GetUnackedBatchesAsync(Share));

        // Resealed without it: outbox seqs 1 | 3, 4, 5 (a batch ends at the hole); wire seqs 1 | 2, 3, 4.
        var b1 = (await outbox.SealNextBatchAsync(Share))!;
        var b2 = (await outbox.SealNextBatchAsync(Share))!;
        Assert.Equal((1UL, 1UL), (b1.FirstSeq, b1.LastSeq));
        Assert.Equal((3UL, 5UL, 2UL), (b2.FirstSeq, b2.LastSeq, b2.WireFirstSeq));
        Assert.Equal(new ulong[] { 2, 3, 4 }, b2.Parse().Ops.Select(o => o.Seq));
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.EnqueueAsync(Share, new Op { OpId = ids[1], Put = new Put { Collection = "docs", Key = "x" } }));

        var retried = (await outbox.RetryPoisonOpAsync(ids[1]))!;
        Assert.Equal((ids[1], 6UL), (retried.OpId, retried.Seq));
        Assert.Null(await outbox.RetryPoisonOpAsync(ids[1]));
        Assert.False(await outbox.DropPoisonOpAsync(ids[1]));
        var b3 = (await outbox.SealNextBatchAsync(Share))!;
        Assert.Equal((6UL, 5UL), (b3.FirstSeq, b3.WireFirstSeq));
        Assert.Equal(0, (await outbox.GetStatusAsync(Share)).PoisonOps);
    }

    [Fact]
    public async Task A_dropped_poison_op_counts_as_drained_and_outcomes_are_counted_over_seq_ranges()
    {
        await using var outbox = Open(new OutboxOptions { MaxBatchOps = 2 });
        await outbox.EnsureProducerAsync(Share, Ref);
        for (var i = 0; i < 4; i++)
        {
            await outbox.EnqueueAsync(Share, Put("k" + i));
        }

        var head = (await outbox.SealNextBatchAsync(Share))!;
        var refusal = new ShareRpcCallException(new Grpc.Core.Status(Grpc.Core.StatusCode.ResourceExhausted, "too big"), []);
        var poison = (await outbox.SetAsideAsync(Share, head.BatchId, 0, refusal, null))!;
        Assert.False(await outbox.IsDrainedAsync(Share));
        await AckAllAsync(outbox);
        Assert.True(await outbox.IsDrainedAsync(Share));
        Assert.True(await outbox.IsAckedAsync(Share, 4));
        Assert.Equal(new OutcomeCounts(2, 1, 0, 1, 0), await outbox.CountOutcomesAsync(Share, [(1, 4)], appliedBefore: 2));
        Assert.True(await outbox.DropPoisonOpAsync(poison.OpId));
        Assert.Null(await outbox.GetPoisonOpAsync(poison.OpId));
        Assert.Equal(0L, (await outbox.GetStatusAsync(Share)).PendingOps);
    }

    [Fact]
    public async Task Compaction_runs_in_bounded_slices_and_stops_between_them_when_cancelled()
    {
        await using var outbox = Open(new OutboxOptions { FsyncEveryCommit = false, MaxBatchOps = 1, AckedRetention = TimeSpan.FromMinutes(1), CompactionSliceOps = 64 });
        await outbox.EnsureProducerAsync(Share, Ref);
        await outbox.EnqueueBulkAsync(Share, Enumerable.Range(0, 300).Select(i => Put("k" + i)).ToList());
        await AckAllAsync(outbox);
        var due = DateTimeOffset.UtcNow.AddHours(1);
        Assert.Equal(0, await outbox.CompactAsync(due, new CancellationToken(canceled: true)));

        var slices = new List<int>();
        int removed;
        while ((removed = await outbox.CompactSliceAsync(Share, due)) > 0)
        {
            slices.Add(removed);
        }

        Assert.All(slices, n => Assert.InRange(n, 1, 64));
        Assert.Equal(300, slices.Sum());
        Assert.True(slices.Count >= 300 / 64);
        Assert.True(await outbox.IsDrainedAsync(Share));
    }

    [Fact]
    public async Task Stopped_reason_and_producer_survive_reopening()
    {
        string producerId;
        await using (var outbox = Open())
        {
            producerId = (await outbox.EnsureProducerAsync(Share, Ref)).ProducerId;
            await outbox.SetStoppedReasonAsync(Share, "PERMISSION_DENIED");
            await outbox.EnqueueAsync(Share, Put("a"));
            Assert.Equal(1UL, await outbox.CountUnsealedAsync(Share));
        }

        await using var reopened = Open();
        var status = await reopened.GetStatusAsync(Share);
        Assert.Equal(("PERMISSION_DENIED", 1L), (status.StoppedReason, status.PendingOps));
        Assert.NotNull(status.OldestPendingEnqueuedAt);
        Assert.Equal(producerId, (await reopened.EnsureProducerAsync(Share, Ref + "x")).ProducerId);
        Assert.Equal(Ref + "x", (await reopened.GetProducersAsync()).Single().SturdyRef);
        await reopened.SetStoppedReasonAsync(Share, null);
        Assert.Null((await reopened.GetStatusAsync(Share)).StoppedReason);
    }
}

/// <summary>The contract on SQLite, and what SQLite alone allows: several processes (here: openers) on one file.</summary>
public sealed class SqliteOutboxContractTests : OutboxContractTests
{
    internal override OutboxEngine Engine => OutboxEngine.Sqlite;

    [Fact]
    public async Task The_first_create_intent_wins_across_concurrent_openers()
    {
        await using var a = Open();
        await using var b = Open();
        var secrets = Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)i, 32).ToArray()).ToArray();
        var intents = await Task.WhenAll(secrets.Select((s, i) => (i % 2 == 0 ? a : b).GetOrAddShareIntentAsync("http://h:1", "session-1", "t", s)));
        Assert.Single(intents.Select(i => Convert.ToHexString(i.OwnerSecret)).Distinct());
        await a.SetShareIntentResultAsync("http://h:1", "session-1", "share-9", Ref, ShareIntentState.Created);
        var read = await b.GetShareIntentAsync("http://h:1", "session-1");
        Assert.Equal(("share-9", ShareIntentState.Created), (read!.ShareId, read.State));
    }
}

/// <summary>The contract on LiteDB (a short lock wait: the second-sender test need not wait 10 s).</summary>
public sealed class LiteDbOutboxContractTests : OutboxContractTests
{
    internal override OutboxEngine Engine { get; } = new LiteDbOutboxEngine { LockWait = TimeSpan.FromMilliseconds(200) };
}
