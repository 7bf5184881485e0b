// LiteDbOutboxStore: outcomes of ops (one, or counted over seq ranges) and compaction of acked ops
// (docs/client.md, "Compaction": linear in what it removes, in short slices).
using LiteDB;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.LiteDb;

internal sealed partial class LiteDbOutboxStore
{
    /// <summary>The recorded outcome of an op, or null while it is unacked (or compacted away; rejections are kept).</summary>
    public Task<OpOutcome?> GetOutcomeAsync(string opId) => WithDbAsync(() =>
    {
        if (_rejections.FindById(opId) is { } rejection)
        {
            return new OpOutcome(opId, OpStatus.Rejected, 0, 0, (RejectReason)rejection["reason"].AsInt32, rejection["detail"].AsString);
        }

        if (FindOp(opId) is not { } op)
        {
            return null;
        }

        // The acked batch whose range holds the seq: the last one starting at or before it.
        var seq = (ulong)op["seq"].AsInt64;
        var batch = BatchRange(op["share_id"].AsString, Acked, 0, seq, newestFirst: true).Limit(1).FirstOrDefault();
        if (batch is null || (ulong)batch["last_seq"].AsInt64 < seq)
        {
            return null;
        }

        var ack = AppendOpsResponse.Parser.ParseFrom(batch["response"].AsBinary).Acks.FirstOrDefault(a => a.OpId == opId);
        return ack is null ? null : OutboxStore.ToOutcome(ack);
    });

    /// <summary>
    /// Counts the outcomes of the ops at <paramref name="ranges"/> (outbox seqs, inclusive) from the stored responses
    /// of their acked batches, one response held at a time. An op up to <paramref name="appliedBefore"/> that was
    /// applied counts as a duplicate (see the SQLite store's CountOutcomesAsync for the contract).
    /// </summary>
    public Task<OutcomeCounts> CountOutcomesAsync(string shareId, IReadOnlyList<(ulong From, ulong To)> ranges, ulong appliedBefore) => WithDbAsync(() =>
    {
        var tally = new long[4]; // applied, duplicate, rejected, set aside
        long total = 0;
        foreach (var (from, to) in ranges)
        {
            total += (long)(to - from + 1);
            tally[3] += _setAside.Query().Where(RowRange(shareId, from, to)).ToEnumerable().LongCount(d => d["state"].AsInt32 == SetAsideWaiting);
            // The batch holding `from` (the last to start at or before it), then every one starting inside the range.
            var start = BatchRange(shareId, Acked, 0, from, newestFirst: true).Limit(1).FirstOrDefault() is { } holding ? (ulong)holding["first_seq"].AsInt64 : from;
            foreach (var batch in BatchRange(shareId, Acked, start, to).ToEnumerable())
            {
                Tally(tally, (ulong)batch["first_seq"].AsInt64, AppendOpsResponse.Parser.ParseFrom(batch["response"].AsBinary).Acks, from, to, appliedBefore);
            }
        }

        return new OutcomeCounts(tally[0], tally[1], tally[2], tally[3], total - tally[0] - tally[1] - tally[2] - tally[3]);
    });

    /// <summary>Adds one batch's acks within [from, to]: a batch covers consecutive seqs, ack i is seq first + i.</summary>
    private static void Tally(long[] tally, ulong first, IList<OpAck> acks, ulong from, ulong to, ulong appliedBefore)
    {
        for (var i = 0; i < acks.Count; i++)
        {
            var seq = first + (ulong)i;
            if (seq < from || seq > to)
            {
                continue;
            }

            var slot = acks[i].Status switch
            {
                OpStatus.Applied when seq <= appliedBefore => 1,
                OpStatus.Duplicate => 1,
                OpStatus.Applied => 0,
                OpStatus.Rejected => 2,
                _ => -1,
            };
            if (slot >= 0)
            {
                tally[slot]++;
            }
        }
    }

    /// <summary>
    /// Removes one slice of a share's acked ops older than <see cref="OutboxOptions.AckedRetention"/>, in one
    /// transaction: the oldest acked batches acked before the cutoff, up to CompactionSliceOps ops but at least one
    /// batch, with their op rows (one key range) and the holes of dropped or retried poison ops behind them. Reads
    /// only the batches it removes, plus one. Returns the ops removed; rejections stay.
    /// </summary>
    public Task<int> CompactSliceAsync(string shareId, DateTimeOffset now) => WithDbAsync(() =>
    {
        var cutoff = (now - _options.AckedRetention).ToUnixTimeMilliseconds();
        var due = new List<BsonDocument>();
        long ops = 0;
        foreach (var b in BatchRange(shareId, Acked).Limit(_options.CompactionSliceOps + 1).ToEnumerable())
        {
            if (b["acked_at"].AsInt64 >= cutoff || (due.Count > 0 && ops + b["op_count"].AsInt32 > _options.CompactionSliceOps))
            {
                break;
            }

            due.Add(b);
            ops += b["op_count"].AsInt32;
        }

        if (due.Count == 0)
        {
            return 0;
        }

        var (lo, hi) = ((ulong)due[0]["first_seq"].AsInt64, (ulong)due[^1]["last_seq"].AsInt64);
        return InTransaction(() =>
        {
            // Acked batches cover consecutive seqs, so every op row in [lo, hi] is one of theirs: one key range.
            foreach (var id in OpRows(shareId, lo, hi).Select(d => d["op_id"]).ToList())
            {
                _opIds.Delete(id);
            }

            var removed = _ops.DeleteMany(RowRange(shareId, lo, hi));
            foreach (var b in due)
            {
                _batches.Delete(b["_id"]);
            }

            foreach (var hole in _setAside.Query().Where(RowRange(shareId, 0, hi)).ToEnumerable().Where(d => d["state"].AsInt32 != SetAsideWaiting).ToList())
            {
                _setAside.Delete(hole["_id"]);
            }

            return removed;
        });
    });
}
