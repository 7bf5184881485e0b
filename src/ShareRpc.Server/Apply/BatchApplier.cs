using System.Globalization;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage;
using Sharerpc.V1;

namespace ShareRpc.Server.Apply;

/// <summary>What a committed batch changed (for waking subscribers).</summary>
internal sealed record BatchOutcome(AppendOpsResponse Response, long ShareRowId, string ShareId, ulong Cursor, int Applied, int Duplicates, int Rejected);

/// <summary>What the apply path did, for tests and metrics: the document keys it looked up.</summary>
internal sealed class ApplyStats
{
    private long _keys;
    private long _mispredicted;

    /// <summary>Document keys looked up by all batches so far (the batch lookup plus point lookups).</summary>
    public long DocumentKeysLookedUp => Interlocked.Read(ref _keys);

    /// <summary>Appends whose key was not the predicted one and cost a point lookup.</summary>
    public long Mispredicted => Interlocked.Read(ref _mispredicted);

    internal void Looked(int keys) => Interlocked.Add(ref _keys, keys);

    internal void Missed() => Interlocked.Increment(ref _mispredicted);
}

/// <summary>
/// Applies one validated batch inside a write transaction, exactly as docs/design.md,
/// "AppendOps semantics" says. Only <see cref="IShareTransaction"/> is used, so any store works.
/// Its cost is linear in the batch: every op id is looked up once, and every document the batch
/// will write is looked up once (an append's key is predicted; see <see cref="PredictTargets"/>).
/// </summary>
internal static class BatchApplier
{
    public static async Task<BatchOutcome> ApplyAsync(IShareTransaction tx, LiveRefClaims claims, AppendOpsRequest batch, DateTimeOffset now,
        CancellationToken ct = default, ApplyStats? stats = null)
    {
        // 1. Capability, epoch and right, checked inside the transaction (the fence).
        var share = await tx.LockShareAsync(claims.ShareId, ct).ConfigureAwait(false);
        var cap = share is null ? null : await tx.GetCapabilityAsync(claims.CapabilityId, ct).ConfigureAwait(false);
        CapabilityChecks.EnsureUsable(share, cap, claims, now, Rights.Append);
        var shareRow = share!.RowId;

        var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted, Cursor = share.Cursor };
        if (batch.Ops.Count == 0) return new BatchOutcome(response, shareRow, share.ShareId, share.Cursor, 0, 0, 0);

        // A producer's sequence belongs to the capability that first wrote it: another capability
        // learns nothing of it (no expected_seq) and cannot advance it.
        var producer = await tx.GetProducerAsync(shareRow, batch.ProducerId, ct).ConfigureAwait(false);
        if (producer?.CapabilityRowId is { } owner && owner != cap!.RowId)
            throw ShareRpcException.PermissionDenied(Reasons.ProducerTaken,
                "producer_id belongs to another capability of this share; a producer writes under one capability, use a producer id of your own");

        // 3 (checked first, it refuses the whole batch). Producer order: no gap after the last seq.
        var lastSeq = producer?.LastSeq ?? 0;
        var firstSeq = batch.Ops[0].Seq;
        if (firstSeq > lastSeq + 1)
        {
            response.BatchStatus = BatchStatus.OutOfOrder;
            response.ExpectedSeq = lastSeq + 1;
            return new BatchOutcome(response, shareRow, share.ShareId, share.Cursor, 0, 0, 0);
        }

        // 2. Each op in order. Everything the batch refers to is looked up once, then kept current in memory.
        var ids = new List<string>(batch.Ops.Count * 2);
        foreach (var op in batch.Ops)
        {
            ids.Add(op.OpId);
            ids.AddRange(op.DependsOn);
        }
        var known = await tx.FindOpsAsync(shareRow, ids, ct).ConfigureAwait(false);
        var heads = new DocumentHeads(tx, shareRow, stats);
        await heads.LoadAsync(PredictTargets(batch, share.Cursor, known, lastSeq), ct).ConfigureAwait(false);
        var run = new BatchRun(tx, shareRow, batch.ProducerId, lastSeq, share.Cursor, known, heads, now);
        foreach (var op in batch.Ops) response.Acks.Add(await run.ApplyAsync(op, ct).ConfigureAwait(false));

        if (run.SeenSeq != lastSeq || producer?.CapabilityRowId != cap!.RowId)
            await tx.SetProducerAsync(shareRow, batch.ProducerId, run.SeenSeq, cap!.RowId, ct).ConfigureAwait(false); // binds it on first write
        if (run.Cursor != share.Cursor) await tx.UpdateShareHeadAsync(shareRow, share.Epoch, run.Cursor, ct).ConfigureAwait(false);
        response.Cursor = run.Cursor;
        return new BatchOutcome(response, shareRow, share.ShareId, run.Cursor, run.Applied, run.Duplicates, run.Rejected);
    }

    /// <summary>
    /// The documents the batch will write, one per op at most: put and delete targets, and for each
    /// append the key it gets if every op before it that can apply does (an append's key is its
    /// cursor). Ops already applied or rejected, seq reuses and missing dependencies are known now
    /// and take no cursor; only a version conflict, found while applying, shifts the appends after
    /// it — those then cost one point lookup each (<see cref="DocumentHeads.GetAsync"/>). Before, a
    /// batch looked up every append collection × every cursor it could reach: 1,024 appends into
    /// 1,024 collections were a million lookups inside the single writer's transaction.
    /// </summary>
    internal static List<(string Collection, string Key)> PredictTargets(AppendOpsRequest batch, ulong head, Dictionary<string, OpOutcome> known, ulong lastSeq)
    {
        var keys = new List<(string, string)>(batch.Ops.Count);
        var applies = new HashSet<string>(StringComparer.Ordinal);
        var cursor = head;
        foreach (var op in batch.Ops)
        {
            if (known.ContainsKey(op.OpId) || applies.Contains(op.OpId) || op.Seq <= lastSeq) continue;
            if (op.DependsOn.Any(d => !applies.Contains(d) && known.GetValueOrDefault(d) is not { Applied: true })) continue;
            applies.Add(op.OpId);
            cursor++;
            keys.Add(op.KindCase switch
            {
                Op.KindOneofCase.Put => (op.Put.Collection, op.Put.Key),
                Op.KindOneofCase.Delete => (op.Delete.Collection, op.Delete.Key),
                _ => (op.Append.Collection, cursor.ToString(CultureInfo.InvariantCulture)),
            });
        }
        return keys;
    }

    /// <summary>One batch's ops applied in order against what is known, keeping it current.</summary>
    private sealed class BatchRun(IShareTransaction tx, long shareRow, string producerId, ulong lastSeq, ulong cursor,
        Dictionary<string, OpOutcome> known, DocumentHeads heads, DateTimeOffset now)
    {
        private readonly ulong _lastSeq = lastSeq; // the producer's last seq before this batch
        public ulong Cursor { get; private set; } = cursor;
        public ulong SeenSeq { get; private set; } = lastSeq;
        public int Applied { get; private set; }
        public int Duplicates { get; private set; }
        public int Rejected { get; private set; }

        public async Task<OpAck> ApplyAsync(Op op, CancellationToken ct)
        {
            var ack = new OpAck { OpId = op.OpId };
            var prior = known.GetValueOrDefault(op.OpId);
            if (prior is { Applied: true })
            {
                (ack.Status, ack.Cursor, ack.Version) = (OpStatus.Duplicate, prior.Cursor, prior.Version);
                Duplicates++;
            }
            else if (prior is not null)
            {
                Reject(ack, (RejectReason)prior.RejectReason, prior.Detail); // rejected before: the prior result, forever
                Rejected++;
            }
            else if (Rejection(known, op, _lastSeq) is { } why)
            {
                await RejectAsync(ack, op, why.Reason, why.Detail, ct).ConfigureAwait(false);
            }
            else
            {
                await ApplyNewAsync(ack, op, ct).ConfigureAwait(false);
            }
            if (op.Seq > SeenSeq) SeenSeq = op.Seq;
            return ack;
        }

        private async Task RejectAsync(OpAck ack, Op op, RejectReason reason, string detail, CancellationToken ct)
        {
            Reject(ack, reason, detail);
            await tx.InsertRejectionAsync(shareRow, op.OpId, (int)reason, detail, ct).ConfigureAwait(false);
            known[op.OpId] = new OpOutcome(false, 0, 0, (int)reason, detail);
            Rejected++;
        }

        private async Task ApplyNewAsync(OpAck ack, Op op, CancellationToken ct)
        {
            var (collection, key, kind) = Target(op, Cursor + 1);
            var head = await heads.GetAsync((collection, key), ct).ConfigureAwait(false);
            var current = head is { Deleted: false } ? head.Version : 0;
            var expected = ExpectedVersion(op);
            if (expected is { } ev && ev != current)
            {
                await RejectAsync(ack, op, RejectReason.VersionConflict,
                    $"expected version {ev}, document {collection}/{key} is at version {current}", ct).ConfigureAwait(false);
                ack.Version = current;
                return;
            }
            Cursor++;
            var version = (head?.Version ?? 0) + 1; // tombstones keep the count going
            var entry = new LogEntry(Cursor, op.OpId, producerId, op.Seq, kind, collection, key,
                Value(op), ContentType(op), expected, op.DependsOn.ToArray(), version, now);
            var logRow = await tx.AppendLogAsync(shareRow, entry, ct).ConfigureAwait(false);
            await tx.UpsertDocumentAsync(shareRow, collection, key, version, Cursor, logRow, kind == OpKind.Delete, ct).ConfigureAwait(false);
            heads.Set((collection, key), new DocumentHead(version, Cursor, logRow, kind == OpKind.Delete));
            known[op.OpId] = new OpOutcome(true, Cursor, version, 0, "");
            (ack.Status, ack.Cursor, ack.Version) = (OpStatus.Applied, Cursor, version);
            Applied++;
        }
    }

    /// <summary>
    /// The heads of the documents one batch touches: loaded at once for the predicted targets, kept
    /// current as the batch writes, and for a key nobody predicted, one point lookup.
    /// </summary>
    private sealed class DocumentHeads(IShareTransaction tx, long shareRow, ApplyStats? stats)
    {
        private readonly HashSet<(string, string)> _looked = [];
        private Dictionary<(string Collection, string Key), DocumentHead> _heads = [];

        public async Task LoadAsync(List<(string Collection, string Key)> keys, CancellationToken ct)
        {
            foreach (var k in keys) _looked.Add(k);
            stats?.Looked(_looked.Count);
            _heads = await tx.GetDocumentHeadsAsync(shareRow, _looked, ct).ConfigureAwait(false);
        }

        public async Task<DocumentHead?> GetAsync((string Collection, string Key) key, CancellationToken ct)
        {
            if (_heads.TryGetValue(key, out var head)) return head;
            if (_looked.Contains(key)) return null;
            stats?.Looked(1);
            stats?.Missed();
            _looked.Add(key);
            head = await tx.GetDocumentHeadAsync(shareRow, key.Collection, key.Key, ct).ConfigureAwait(false);
            if (head is not null) _heads[key] = head;
            return head;
        }

        public void Set((string Collection, string Key) key, DocumentHead head)
        {
            _looked.Add(key);
            _heads[key] = head;
        }
    }

    private static (RejectReason Reason, string Detail)? Rejection(Dictionary<string, OpOutcome> known, Op op, ulong lastSeq)
    {
        if (op.Seq <= lastSeq)
            return (RejectReason.InvalidOp, $"seq {op.Seq} of this producer was already used by another op");
        foreach (var dep in op.DependsOn)
        {
            if (known.GetValueOrDefault(dep) is not { Applied: true }) return (RejectReason.DependencyMissing, $"depends_on {dep} is not applied");
        }
        return null;
    }

    private static void Reject(OpAck ack, RejectReason reason, string detail)
    {
        ack.Status = OpStatus.Rejected;
        ack.RejectReason = reason;
        ack.Detail = detail;
    }

    private static (string Collection, string Key, OpKind Kind) Target(Op op, ulong nextCursor) => op.KindCase switch
    {
        Op.KindOneofCase.Put => (op.Put.Collection, op.Put.Key, OpKind.Put),
        Op.KindOneofCase.Delete => (op.Delete.Collection, op.Delete.Key, OpKind.Delete),
        Op.KindOneofCase.Append => (op.Append.Collection, nextCursor.ToString(CultureInfo.InvariantCulture), OpKind.Append),
        _ => throw ShareRpcException.InvalidArgument("kind", "an op must be one of put, delete, append"),
    };

    private static ulong? ExpectedVersion(Op op) => op.KindCase switch
    {
        Op.KindOneofCase.Put when op.Put.HasExpectedVersion => op.Put.ExpectedVersion,
        Op.KindOneofCase.Delete when op.Delete.HasExpectedVersion => op.Delete.ExpectedVersion,
        _ => null,
    };

    private static byte[]? Value(Op op) => op.KindCase switch
    {
        Op.KindOneofCase.Put => Bytes(op.Put.Value),
        Op.KindOneofCase.Append => Bytes(op.Append.Value),
        _ => null,
    };

    /// <summary>
    /// The value's bytes without a copy when the parsed message owns an array of exactly them (what
    /// Google.Protobuf makes when it parses): a 1 MiB value is otherwise copied once more per write.
    /// Nothing writes to it: the message is immutable from here on.
    /// </summary>
    private static byte[] Bytes(Google.Protobuf.ByteString value) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(value.Memory, out var segment)
        && segment is { Offset: 0, Array: { } array } && segment.Count == array.Length
            ? array
            : value.ToByteArray();

    private static string ContentType(Op op) => op.KindCase switch
    {
        Op.KindOneofCase.Put => op.Put.ContentType,
        Op.KindOneofCase.Append => op.Append.ContentType,
        _ => "",
    };

    /// <summary>Rebuilds the wire op from a log entry (for Subscribe); values wrap the read buffer (never changed after the read), not copies.</summary>
    public static Op ToOp(LogEntry e)
    {
        var op = new Op { OpId = e.OpId, Seq = e.Seq };
        op.DependsOn.AddRange(e.DependsOn);
        switch (e.Kind)
        {
            case OpKind.Put:
                op.Put = new Put { Collection = e.Collection, Key = e.Key, Value = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(e.Value ?? []), ContentType = e.ContentType };
                if (e.ExpectedVersion is { } pv) op.Put.ExpectedVersion = pv;
                break;
            case OpKind.Delete:
                op.Delete = new Delete { Collection = e.Collection, Key = e.Key };
                if (e.ExpectedVersion is { } dv) op.Delete.ExpectedVersion = dv;
                break;
            case OpKind.Append:
                op.Append = new Append { Collection = e.Collection, Value = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(e.Value ?? []), ContentType = e.ContentType };
                break;
        }
        return op;
    }
}
