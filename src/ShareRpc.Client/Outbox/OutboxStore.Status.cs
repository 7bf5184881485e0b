// OutboxStore: per-share status and op outcomes.
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>What is waiting, per share. PoisonOps are set aside (not pending): they wait for the application.</summary>
internal sealed record OutboxStatus(string ShareId, long PendingOps, long SealedBatches, long RejectedOps, DateTimeOffset? OldestPendingEnqueuedAt, string? StoppedReason, long PoisonOps = 0);

/// <summary>The final outcome of one op, as the server acked it.</summary>
public sealed record OpOutcome(string OpId, OpStatus Status, ulong Cursor, ulong Version, RejectReason RejectReason, string Detail);

internal sealed partial class OutboxStore
{
    // Ops after the acked seq, less the holes set-aside ops left there. Both terms are index
    // lookups (holes are few), so it stays O(log n) however long the backlog.
    private const string PendingSql = """
        (p.next_seq - 1 - p.acked_seq) - (SELECT COUNT(*) FROM set_aside h WHERE h.share_id = p.share_id AND h.seq > p.acked_seq)
        """;

    /// <summary>Records why a share's sender stopped (e.g. PERMISSION_DENIED); null clears it.</summary>
    public Task SetStoppedReasonAsync(string shareId, string? reason) => WithDbAsync(() =>
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "UPDATE producers SET stopped_reason = $r WHERE share_id = $s";
        cmd.Parameters.AddWithValue("$r", (object?)reason ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$s", shareId);
        cmd.ExecuteNonQuery();
    });

    /// <summary>
    /// True when every op enqueued for the share is acked, rejected or set aside. O(log n): batches
    /// are acked in seq order, so the producer's acked seq says it all, less the holes of ops set aside.
    /// </summary>
    public Task<bool> IsDrainedAsync(string shareId) => WithDbAsync(() =>
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"SELECT {PendingSql} FROM producers p WHERE p.share_id = $s";
        cmd.Parameters.AddWithValue("$s", shareId);
        return cmd.ExecuteScalar() is not long pending || pending <= 0;
    });

    /// <summary>True when the producer's acked seq has reached <paramref name="seq"/>.</summary>
    public Task<bool> IsAckedAsync(string shareId, ulong seq) => WithDbAsync(() => ReadProducer(shareId) is { } p && p.AckedSeq >= seq);

    public Task<OutboxStatus> GetStatusAsync(string shareId) => WithDbAsync(() =>
    {
        using var cmd = _db.CreateCommand();
        // O(log n) but for the count of unacked batches (at most a window's worth).
        cmd.CommandText = $"""
            SELECT {PendingSql},
              (SELECT COUNT(*) FROM batches WHERE share_id = $s AND state = 1),
              p.rejected,
              (SELECT enqueued_at FROM ops WHERE share_id = $s AND seq > p.acked_seq ORDER BY seq LIMIT 1),
              p.stopped_reason,
              (SELECT COUNT(*) FROM set_aside WHERE share_id = $s AND state = {SetAsideWaiting})
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
            r.IsDBNull(4) ? null : r.GetString(4),
            r.GetInt64(5));
    });

    /// <summary>The recorded outcome of an op, or null while it is unacked (or compacted away; rejections are kept).</summary>
    public Task<OpOutcome?> GetOutcomeAsync(string opId) => WithDbAsync(() =>
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
        byte[]? responseBytes;
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
    });

    internal static OpOutcome ToOutcome(OpAck ack) =>
        new(ack.OpId, ack.Status, ack.Cursor, ack.Version, ack.RejectReason, ack.Detail ?? "");
}
