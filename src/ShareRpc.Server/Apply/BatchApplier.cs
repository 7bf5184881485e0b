using System.Globalization;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage;
using Sharerpc.V1;

namespace ShareRpc.Server.Apply;

/// <summary>What a committed batch changed (for waking subscribers).</summary>
internal sealed record BatchOutcome(AppendOpsResponse Response, long ShareRowId, string ShareId, ulong Cursor, int Applied, int Duplicates, int Rejected);

/// <summary>
/// Applies one validated batch inside a write transaction, exactly as docs/design.md,
/// "AppendOps semantics" says. Only <see cref="IShareTransaction"/> is used, so any store works.
/// </summary>
internal static class BatchApplier
{
    public static async Task<BatchOutcome> ApplyAsync(IShareTransaction tx, LiveRefClaims claims, AppendOpsRequest batch, DateTimeOffset now, CancellationToken ct = default)
    {
        // 1. Capability, epoch and right, checked inside the transaction (the fence).
        var share = await tx.LockShareAsync(claims.ShareId, ct).ConfigureAwait(false);
        var cap = share is null ? null : await tx.GetCapabilityAsync(claims.CapabilityId, ct).ConfigureAwait(false);
        CapabilityChecks.EnsureUsable(share, cap, claims, now, Rights.Append);
        var shareRow = share!.RowId;

        var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted, Cursor = share.Cursor };
        if (batch.Ops.Count == 0) return new BatchOutcome(response, shareRow, share.ShareId, share.Cursor, 0, 0, 0);

        // 3 (checked first, it refuses the whole batch). Producer order: no gap after the last seq.
        var lastSeq = await tx.GetProducerSeqAsync(shareRow, batch.ProducerId, ct).ConfigureAwait(false);
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
        var heads = await tx.GetDocumentHeadsAsync(shareRow, TargetCandidates(batch, share.Cursor), ct).ConfigureAwait(false);
        var cursor = share.Cursor;
        var seenSeq = lastSeq;
        int applied = 0, duplicates = 0, rejected = 0;
        foreach (var op in batch.Ops)
        {
            var ack = new OpAck { OpId = op.OpId };
            response.Acks.Add(ack);
            var prior = known.GetValueOrDefault(op.OpId);
            if (prior is { Applied: true })
            {
                ack.Status = OpStatus.Duplicate;
                ack.Cursor = prior.Cursor;
                ack.Version = prior.Version;
                duplicates++;
            }
            else if (prior is not null)
            {
                // Rejected before: the prior result, forever.
                Reject(ack, (RejectReason)prior.RejectReason, prior.Detail);
                rejected++;
            }
            else if (Rejection(known, op, lastSeq) is { } why)
            {
                Reject(ack, why.Reason, why.Detail);
                await tx.InsertRejectionAsync(shareRow, op.OpId, (int)why.Reason, why.Detail, ct).ConfigureAwait(false);
                known[op.OpId] = new OpOutcome(false, 0, 0, (int)why.Reason, why.Detail);
                rejected++;
            }
            else
            {
                var (collection, key, kind) = Target(op, cursor + 1);
                var head = heads.GetValueOrDefault((collection, key));
                var current = head is { Deleted: false } ? head.Version : 0;
                var expected = ExpectedVersion(op);
                if (expected is { } ev && ev != current)
                {
                    var detail = $"expected version {ev}, document {collection}/{key} is at version {current}";
                    Reject(ack, RejectReason.VersionConflict, detail);
                    ack.Version = current;
                    await tx.InsertRejectionAsync(shareRow, op.OpId, (int)RejectReason.VersionConflict, detail, ct).ConfigureAwait(false);
                    known[op.OpId] = new OpOutcome(false, 0, 0, (int)RejectReason.VersionConflict, detail);
                    rejected++;
                }
                else
                {
                    cursor++;
                    var version = (head?.Version ?? 0) + 1; // tombstones keep the count going
                    var entry = new LogEntry(cursor, op.OpId, batch.ProducerId, op.Seq, kind, collection, key,
                        Value(op), ContentType(op), expected, op.DependsOn.ToArray(), version, now);
                    var logRow = await tx.AppendLogAsync(shareRow, entry, ct).ConfigureAwait(false);
                    await tx.UpsertDocumentAsync(shareRow, collection, key, version, cursor, logRow, kind == OpKind.Delete, ct).ConfigureAwait(false);
                    heads[(collection, key)] = new DocumentHead(version, cursor, logRow, kind == OpKind.Delete);
                    known[op.OpId] = new OpOutcome(true, cursor, version, 0, "");
                    ack.Status = OpStatus.Applied;
                    ack.Cursor = cursor;
                    ack.Version = version;
                    applied++;
                }
            }
            if (op.Seq > seenSeq) seenSeq = op.Seq;
        }

        if (seenSeq != lastSeq) await tx.SetProducerSeqAsync(shareRow, batch.ProducerId, seenSeq, ct).ConfigureAwait(false);
        if (cursor != share.Cursor) await tx.UpdateShareHeadAsync(shareRow, share.Epoch, cursor, ct).ConfigureAwait(false);
        response.Cursor = cursor;
        return new BatchOutcome(response, shareRow, share.ShareId, cursor, applied, duplicates, rejected);
    }

    /// <summary>
    /// Every document the batch may write: the put/delete targets, and for appends each key the
    /// op could land on (an append's key is its cursor, somewhere in head+1 … head+ops).
    /// </summary>
    private static List<(string Collection, string Key)> TargetCandidates(AppendOpsRequest batch, ulong head)
    {
        var keys = new List<(string, string)>(batch.Ops.Count);
        HashSet<string>? appendCollections = null;
        foreach (var op in batch.Ops)
        {
            switch (op.KindCase)
            {
                case Op.KindOneofCase.Put: keys.Add((op.Put.Collection, op.Put.Key)); break;
                case Op.KindOneofCase.Delete: keys.Add((op.Delete.Collection, op.Delete.Key)); break;
                case Op.KindOneofCase.Append: (appendCollections ??= new(StringComparer.Ordinal)).Add(op.Append.Collection); break;
            }
        }
        if (appendCollections is not null)
        {
            foreach (var collection in appendCollections)
            {
                for (var c = head + 1; c <= head + (ulong)batch.Ops.Count; c++) keys.Add((collection, c.ToString(CultureInfo.InvariantCulture)));
            }
        }
        return keys;
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
        Op.KindOneofCase.Put => op.Put.Value.ToByteArray(),
        Op.KindOneofCase.Append => op.Append.Value.ToByteArray(),
        _ => null,
    };

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
