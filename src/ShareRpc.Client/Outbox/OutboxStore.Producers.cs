// OutboxStore: the producer of each share (its id and its seqs).
namespace ShareRpc.Client.Outbox;

/// <summary>
/// One producer: this outbox writing to one share. Seqs up to SealedSeq are in batches; up to
/// AckedSeq, acked or rejected. These are the outbox's seqs; on the wire, the ops behind an op set
/// aside move up by one (docs/client.md, "Poison ops"): WireSealedSeq is the wire seq of the last
/// sealed op.
/// </summary>
internal sealed record ProducerInfo(string ShareId, string ProducerId, string SturdyRef, ulong NextSeq, ulong AckedSeq, ulong SealedSeq = 0, ulong WireSealedSeq = 0);

internal sealed partial class OutboxStore
{
    /// <summary>The producer for a share, made (with a new producer id) the first time.</summary>
    public Task<ProducerInfo> EnsureProducerAsync(string shareId, string sturdyRef)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentException.ThrowIfNullOrEmpty(sturdyRef);
        return WithDbAsync(() =>
        {
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = """
                    INSERT INTO producers(share_id, producer_id, sturdy_ref, next_seq, sealed_seq, acked_seq, rejected) VALUES ($s, $p, $r, 1, 0, 0, 0)
                    ON CONFLICT(share_id) DO UPDATE SET sturdy_ref = excluded.sturdy_ref
                    """;
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$p", Guid.CreateVersion7().ToString());
                cmd.Parameters.AddWithValue("$r", sturdyRef);
                cmd.ExecuteNonQuery();
            }

            return ReadProducer(shareId) ?? throw new InvalidOperationException("Producer row vanished.");
        });
    }

    public Task<IReadOnlyList<ProducerInfo>> GetProducersAsync() => WithDbAsync<IReadOnlyList<ProducerInfo>>(() =>
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT share_id FROM producers ORDER BY share_id";
        var ids = new List<string>();
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                ids.Add(r.GetString(0));
            }
        }

        return ids.Select(id => ReadProducer(id)!).ToArray();
    });

    /// <summary>Ops made durable and not yet sealed (set-aside holes included: a hint, not a count to seal).</summary>
    public Task<ulong> CountUnsealedAsync(string shareId) => WithDbAsync(() =>
        ReadProducer(shareId) is { } p && p.NextSeq > p.SealedSeq + 1 ? p.NextSeq - 1 - p.SealedSeq : 0UL);

    private ProducerInfo? ReadProducer(string shareId)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT producer_id, sturdy_ref, next_seq, acked_seq, sealed_seq, COALESCE(wire_sealed_seq, sealed_seq) FROM producers WHERE share_id = $s";
        cmd.Parameters.AddWithValue("$s", shareId);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new ProducerInfo(shareId, r.GetString(0), r.GetString(1), (ulong)r.GetInt64(2), (ulong)r.GetInt64(3), (ulong)r.GetInt64(4), (ulong)r.GetInt64(5))
            : null;
    }
}
