// OutboxStore: compaction of acked ops (docs/client.md, "Compaction"): linear in what it removes, in short slices.
namespace ShareRpc.Client.Outbox;

internal sealed partial class OutboxStore
{
    /// <summary>
    /// Removes one slice of a share's acked ops older than <see cref="OutboxOptions.AckedRetention"/>, in
    /// one short transaction: the oldest acked batches whose ack is older than the cutoff (batches are
    /// acked in seq order, so they come first in the batches_by_state index), up to
    /// <see cref="OutboxOptions.CompactionSliceOps"/> ops but at least one batch, with their op rows
    /// (one seq range) and the holes of dropped or retried poison ops behind them. Reads only the
    /// batch rows it removes, plus one: the work is linear in what it removes. Returns the ops
    /// removed; 0 when nothing is due. Rejections stay (the client must be able to report them).
    /// </summary>
    public Task<int> CompactSliceAsync(string shareId, DateTimeOffset now) => WithDbAsync(() =>
    {
        var cutoff = (now - _options.AckedRetention).ToUnixTimeMilliseconds();
        long? from = null, to = null;
        long ops = 0;
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = "SELECT first_seq, last_seq, acked_at, op_count FROM batches WHERE share_id = $s AND state = 2 ORDER BY first_seq LIMIT $n";
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.Parameters.AddWithValue("$n", _options.CompactionSliceOps + 1);
            using var r = cmd.ExecuteReader();
            while (r.Read() && r.GetInt64(2) < cutoff && (from is null || ops + r.GetInt64(3) <= _options.CompactionSliceOps))
            {
                from ??= r.GetInt64(0);
                to = r.GetInt64(1);
                ops += r.GetInt64(3);
            }
        }

        if (from is not { } lo || to is not { } hi)
        {
            return 0;
        }

        using var tx = _db.BeginTransaction();
        // Acked batches cover consecutive seqs, so every op row in [lo, hi] is one of theirs: an index range.
        var removed = Exec(tx, "DELETE FROM ops WHERE share_id = $s AND seq BETWEEN $lo AND $hi", ("$s", shareId), ("$lo", lo), ("$hi", hi));
        Exec(tx, "DELETE FROM batches WHERE share_id = $s AND state = 2 AND first_seq BETWEEN $lo AND $hi", ("$s", shareId), ("$lo", lo), ("$hi", hi));
        Exec(tx, $"DELETE FROM set_aside WHERE share_id = $s AND state <> {SetAsideWaiting} AND seq <= $hi", ("$s", shareId), ("$hi", hi));
        tx.Commit();
        return removed;
    });
}
