// OutboxStore: per-share status, op outcomes and compaction of acked batches.
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>What is waiting, per share.</summary>
internal sealed record OutboxStatus(string ShareId, long PendingOps, long SealedBatches, long RejectedOps, DateTimeOffset? OldestPendingEnqueuedAt, string? StoppedReason);

/// <summary>The final outcome of one op, as the server acked it.</summary>
public sealed record OpOutcome(string OpId, OpStatus Status, ulong Cursor, ulong Version, RejectReason RejectReason, string Detail);

internal sealed partial class OutboxStore
{
    /// <summary>Records why a share's sender stopped (e.g. PERMISSION_DENIED); null clears it.</summary>
    public async Task SetStoppedReasonAsync(string shareId, string? reason)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "UPDATE producers SET stopped_reason = $r WHERE share_id = $s";
            cmd.Parameters.AddWithValue("$r", (object?)reason ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.ExecuteNonQuery();
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// True when every op enqueued for the share is acked or rejected. O(1): batches are acked in
    /// seq order, so the producer's acked seq says it all (GetStatusAsync counts rows).
    /// </summary>
    public async Task<bool> IsDrainedAsync(string shareId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var p = ReadProducer(shareId);
            return p is null || p.AckedSeq + 1 >= p.NextSeq;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>True when the producer's acked seq has reached <paramref name="seq"/>.</summary>
    public async Task<bool> IsAckedAsync(string shareId, ulong seq)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            return ReadProducer(shareId) is { } p && p.AckedSeq >= seq;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    public async Task<OutboxStatus> GetStatusAsync(string shareId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            // O(1) but for the count of unacked batches (at most a window's worth).
            cmd.CommandText = """
                SELECT p.next_seq - 1 - p.acked_seq,
                  (SELECT COUNT(*) FROM batches WHERE share_id = $s AND state = 1),
                  p.rejected,
                  (SELECT enqueued_at FROM ops WHERE share_id = $s AND seq = p.acked_seq + 1),
                  p.stopped_reason
                FROM producers p WHERE p.share_id = $s
                """;
            cmd.Parameters.AddWithValue("$s", shareId);
            using var r = cmd.ExecuteReader();
            if (!r.Read())
            {
                return new OutboxStatus(shareId, 0, 0, 0, null, null);
            }

            return new OutboxStatus(
                shareId,
                r.GetInt64(0),
                r.GetInt64(1),
                r.GetInt64(2),
                r.IsDBNull(3) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)),
                r.IsDBNull(4) ? null : r.GetString(4));
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>The recorded outcome of an op, or null while it is unacked (or compacted away; rejections are kept).</summary>
    public async Task<OpOutcome?> GetOutcomeAsync(string opId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = "SELECT reason, detail FROM rejections WHERE op_id = $id";
                cmd.Parameters.AddWithValue("$id", opId);
                using var r = cmd.ExecuteReader();
                if (r.Read())
                {
                    return new OpOutcome(opId, OpStatus.Rejected, 0, 0, (RejectReason)r.GetInt32(0), r.GetString(1));
                }
            }

            string? share = null;
            long seq = 0;
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = "SELECT share_id, seq FROM ops WHERE op_id = $id";
                cmd.Parameters.AddWithValue("$id", opId);
                using var r = cmd.ExecuteReader();
                if (r.Read())
                {
                    share = r.GetString(0);
                    seq = r.GetInt64(1);
                }
            }

            if (share is null)
            {
                return null;
            }

            // The acked batch whose range holds the seq: the last one starting at or before it.
            byte[]? responseBytes = null;
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = """
                    SELECT response FROM batches
                    WHERE share_id = $s AND state = 2 AND first_seq <= $q AND last_seq >= $q
                    ORDER BY first_seq DESC LIMIT 1
                    """;
                cmd.Parameters.AddWithValue("$s", share);
                cmd.Parameters.AddWithValue("$q", seq);
                responseBytes = cmd.ExecuteScalar() as byte[];
            }

            if (responseBytes is null)
            {
                return null;
            }

            var ack = AppendOpsResponse.Parser.ParseFrom(responseBytes).Acks.FirstOrDefault(a => a.OpId == opId);
            return ack is null ? null : ToOutcome(ack);
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// Deletes acked batches older than the retention and their op rows; returns the ops removed.
    /// Rejections are kept (the client must be able to report them).
    /// </summary>
    public async Task<int> CompactAsync(DateTimeOffset now)
    {
        var cutoff = (now - _options.AckedRetention).ToUnixTimeMilliseconds();
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var tx = _db.BeginTransaction();
            int n;
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    DELETE FROM ops WHERE EXISTS (
                      SELECT 1 FROM batches b WHERE b.share_id = ops.share_id AND b.state = 2 AND b.acked_at < $c
                        AND ops.seq BETWEEN b.first_seq AND b.last_seq)
                    """;
                cmd.Parameters.AddWithValue("$c", cutoff);
                n = cmd.ExecuteNonQuery();
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "DELETE FROM batches WHERE state = 2 AND acked_at < $c";
                cmd.Parameters.AddWithValue("$c", cutoff);
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
            return n;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    private static OpOutcome ToOutcome(OpAck ack) =>
        new(ack.OpId, ack.Status, ack.Cursor, ack.Version, ack.RejectReason, ack.Detail ?? "");
}
