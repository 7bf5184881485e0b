using Google.Protobuf;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

public sealed class OutboxStoreTests : IDisposable
{
    private const string Share = "share-1";
    private const string Ref = "sharerpc://127.0.0.1:1/share-1/cap-1#c2VjcmV0";
    private readonly string _dir = Directory.CreateTempSubdirectory("outbox-").FullName;

    private string PathOf(string name = "outbox.db") => Path.Combine(_dir, name);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Op Put(string key, int valueBytes = 8) => new()
    {
        Put = new Put { Collection = "docs", Key = key, Value = ByteString.CopyFrom(new byte[valueBytes]) },
    };

    [Fact]
    public async Task Concurrent_enqueues_get_unique_ids_and_a_gap_free_seq()
    {
        await using var outbox = OutboxStore.Open(PathOf());
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
        await using var outbox = OutboxStore.Open(PathOf());
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
        await using var outbox = OutboxStore.Open(PathOf(), new OutboxOptions { MaxBatchOps = 3, MaxBatchBytes = 1200 });
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
        await using (var outbox = OutboxStore.Open(PathOf(), new OutboxOptions { MaxBatchOps = 2 }))
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

        await using (var reopened = OutboxStore.Open(PathOf(), new OutboxOptions { MaxBatchOps = 2 }))
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
        await using var outbox = OutboxStore.Open(PathOf());
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
        await using var outbox = OutboxStore.Open(PathOf(), new OutboxOptions { AckedRetention = TimeSpan.FromMinutes(1) });
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
    public async Task A_second_writer_on_the_same_file_gets_a_clear_error_and_the_file_is_owner_only()
    {
        await using var first = OutboxStore.Open(PathOf());
        first.AcquireWriterLock();
        await using var second = OutboxStore.Open(PathOf());
        var ex = Assert.Throws<OutboxInUseException>(() => second.AcquireWriterLock());
        Assert.Contains("in use by another process", ex.Message);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(PathOf()));
        }
    }

    [Fact]
    public async Task The_first_create_intent_wins_across_concurrent_openers()
    {
        await using var a = OutboxStore.Open(PathOf());
        await using var b = OutboxStore.Open(PathOf());
        var secrets = Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)i, 32).ToArray()).ToArray();
        var intents = await Task.WhenAll(secrets.Select((s, i) => (i % 2 == 0 ? a : b).GetOrAddShareIntentAsync("http://h:1", "session-1", "t", s)));
        Assert.Single(intents.Select(i => Convert.ToHexString(i.OwnerSecret)).Distinct());
        await a.SetShareIntentResultAsync("http://h:1", "session-1", "share-9", Ref, ShareIntentState.Created);
        var read = await b.GetShareIntentAsync("http://h:1", "session-1");
        Assert.Equal(("share-9", ShareIntentState.Created), (read!.ShareId, read.State));
    }

    [Fact]
    public async Task Enqueue_without_a_producer_is_refused()
    {
        await using var outbox = OutboxStore.Open(PathOf());
        await Assert.ThrowsAsync<InvalidOperationException>(() => outbox.EnqueueAsync("unknown", Put("a")));
    }
}
