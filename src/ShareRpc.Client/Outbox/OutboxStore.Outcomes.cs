// OutboxStore: counting the outcomes of many ops at once (the CLI's append summary), from the acked batches' responses.
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>How the ops of some seq ranges ended. Unknown: not acked (yet), or compacted away.</summary>
internal sealed record OutcomeCounts(long Applied, long Duplicate, long Rejected, long SetAside, long Unknown);

internal sealed partial class OutboxStore
{
    /// <summary>
    /// Counts the outcomes of the ops at <paramref name="ranges"/> (outbox seqs, inclusive) of a share,
    /// from the stored responses of their acked batches: each batch row is read once and one response
    /// is held at a time, so it costs the same memory for a million ops as for ten. An op at a seq up
    /// to <paramref name="appliedBefore"/> that was applied counts as a duplicate: it was applied
    /// before the caller enqueued it again (what the server would answer for it now).
    /// </summary>
    public Task<OutcomeCounts> CountOutcomesAsync(string shareId, IReadOnlyList<(ulong From, ulong To)> ranges, ulong appliedBefore) => WithDbAsync(() =>
    {
        long applied = 0, duplicate = 0, rejected = 0, setAside = 0, total = 0;
        foreach (var (from, to) in ranges)
        {
            total += (long)(to - from + 1);
            setAside += CountPoisonIn(shareId, from, to);
            using var cmd = _db.CreateCommand();
            // The batch holding `from` (the last to start at or before it), then every one starting inside the range.
            cmd.CommandText = """
                SELECT first_seq, response FROM batches WHERE share_id = $s AND state = 2
                  AND first_seq >= COALESCE((SELECT MAX(first_seq) FROM batches WHERE share_id = $s AND state = 2 AND first_seq <= $f), $f)
                  AND first_seq <= $t
                ORDER BY first_seq
                """;
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.Parameters.AddWithValue("$f", (long)from);
            cmd.Parameters.AddWithValue("$t", (long)to);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                // A batch covers consecutive seqs and acks its ops in order: ack i is seq first + i.
                var first = (ulong)r.GetInt64(0);
                var acks = AppendOpsResponse.Parser.ParseFrom((byte[])r.GetValue(1)).Acks;
                for (var i = 0; i < acks.Count; i++)
                {
                    var seq = first + (ulong)i;
                    if (seq < from || seq > to)
                    {
                        continue;
                    }

                    switch (acks[i].Status)
                    {
                        case OpStatus.Applied when seq <= appliedBefore:
                        case OpStatus.Duplicate:
                            duplicate++;
                            break;
                        case OpStatus.Applied:
                            applied++;
                            break;
                        case OpStatus.Rejected:
                            rejected++;
                            break;
                    }
                }
            }
        }

        return new OutcomeCounts(applied, duplicate, rejected, setAside, total - applied - duplicate - rejected - setAside);
    });

    private long CountPoisonIn(string shareId, ulong from, ulong to)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM set_aside WHERE share_id = $s AND state = {SetAsideWaiting} AND seq BETWEEN $f AND $t";
        cmd.Parameters.AddWithValue("$s", shareId);
        cmd.Parameters.AddWithValue("$f", (long)from);
        cmd.Parameters.AddWithValue("$t", (long)to);
        return (long)cmd.ExecuteScalar()!;
    }
}
