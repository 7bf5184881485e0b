// The outbox store contract (docs/design.md, "Storage"; docs/client.md, "Outbox stores"): what the sender,
// the writers, the CLI and the chaos harness ask of an outbox, whichever engine keeps it.
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// A durable client outbox (docs/design.md, "Client: the durable outbox"). Every engine keeps the same
/// promises: an op is durable before <see cref="EnqueueAsync"/> returns (concurrent enqueues may share
/// one commit); a batch's membership and request bytes are fixed when it is sealed, so every resend is
/// byte-for-byte the same; each op row carries a CRC-32C checked before it is sent; a missing or
/// damaged row is an <see cref="OutboxCorruptException"/>; an op set aside leaves a hole that the
/// wire seqs close; one process sends per file (<see cref="AcquireWriterLock"/>).
/// The shared contract tests (tests/ShareRpc.Client.Tests/OutboxContractTests.cs) run on every engine.
/// </summary>
internal interface IOutboxStore : IAsyncDisposable
{
    /// <summary>The outbox file's full path.</summary>
    string Path { get; }

    /// <summary>The engine that keeps this outbox.</summary>
    OutboxEngine Engine { get; }

    /// <summary>Makes the op durable and returns its id (UUIDv7 unless the caller set one) and seq.</summary>
    Task<EnqueuedOp> EnqueueAsync(string shareId, Op op);

    /// <summary>Makes every op durable in one commit, in order; an op id already here is reported, not enqueued twice.</summary>
    Task<BulkEnqueued[]> EnqueueBulkAsync(string shareId, IReadOnlyList<Op> ops, bool refuseSetAside = false);

    /// <summary>Seals the oldest unsealed ops into one batch, committed before it is sent; null when nothing waits.</summary>
    Task<SealedBatch?> SealNextBatchAsync(string shareId);

    /// <summary>Sealed, unacked batches whose last seq is at least <paramref name="fromSeq"/>, oldest first.</summary>
    Task<IReadOnlyList<SealedBatch>> GetUnackedBatchesAsync(string shareId, ulong fromSeq = 0, int limit = int.MaxValue);

    /// <summary>Records an accepted batch's acks in one commit; an ack for a batch not sealed here changes nothing.</summary>
    Task<IReadOnlyList<OpOutcome>> RecordAckAsync(string shareId, AppendOpsResponse response);

    /// <summary>Removes one slice of acked ops older than the retention; returns the ops removed.</summary>
    Task<int> CompactSliceAsync(string shareId, DateTimeOffset now);

    Task<ShareIntent> GetOrAddShareIntentAsync(string server, string shareKey, string title, byte[] newSecret);

    Task SetShareIntentResultAsync(string server, string shareKey, string? shareId, string? sturdyRef, ShareIntentState state);

    Task<ShareIntent?> GetShareIntentAsync(string server, string shareKey);

    Task<OutcomeCounts> CountOutcomesAsync(string shareId, IReadOnlyList<(ulong From, ulong To)> ranges, ulong appliedBefore);

    Task<PoisonOp?> SetAsideAsync(string shareId, string batchId, int opIndex, ShareRpcCallException refusal, string? field);

    Task<IReadOnlyList<PoisonOp>> GetPoisonOpsAsync(string? shareId = null);

    Task<PoisonOp?> GetPoisonOpAsync(string opId);

    Task<bool> DropPoisonOpAsync(string opId);

    Task<EnqueuedOp?> RetryPoisonOpAsync(string opId);

    Task<ProducerInfo> EnsureProducerAsync(string shareId, string sturdyRef);

    Task<IReadOnlyList<ProducerInfo>> GetProducersAsync();

    Task<ulong> CountUnsealedAsync(string shareId);

    Task SetStoppedReasonAsync(string shareId, string? reason);

    Task<bool> IsDrainedAsync(string shareId);

    Task<bool> IsAckedAsync(string shareId, ulong seq);

    Task<OutboxStatus> GetStatusAsync(string shareId);

    Task<OpOutcome?> GetOutcomeAsync(string opId);

    /// <summary>Takes the single-sender lock; a second process gets <see cref="OutboxInUseException"/>.</summary>
    void AcquireWriterLock();
}

/// <summary>What every engine does the same way on top of the contract.</summary>
internal static class OutboxStoreExtensions
{
    /// <summary>
    /// Compacts every share, slice by slice, until nothing is due or <paramref name="cancellationToken"/>
    /// fires. Between slices the store is free (enqueues and acks go on) and the token is looked at, so
    /// a dispose or a process exit waits for one slice at most (docs/client.md, "Compaction").
    /// Returns the ops removed.
    /// </summary>
    public static async Task<int> CompactAsync(this IOutboxStore store, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var total = 0;
        foreach (var producer in await store.GetProducersAsync().ConfigureAwait(false))
        {
            int removed;
            while (!cancellationToken.IsCancellationRequested && (removed = await store.CompactSliceAsync(producer.ShareId, now).ConfigureAwait(false)) > 0)
            {
                total += removed;
            }
        }

        return total;
    }
}
