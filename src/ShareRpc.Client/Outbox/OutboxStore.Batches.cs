// OutboxStore: sealing ops into batches, the unacked batches a reconnect resends, and recording acks.
using Google.Protobuf;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// A sealed batch: its membership and its exact request bytes were written before the first
/// send and never change, so every resend is byte-for-byte the same.
/// </summary>
internal sealed record SealedBatch(string BatchId, string ShareId, ulong FirstSeq, ulong LastSeq, int OpCount, byte[] RequestBytes)
{
    public AppendOpsRequest Parse() => AppendOpsRequest.Parser.ParseFrom(RequestBytes);
}

internal sealed partial class OutboxStore
{
    /// <summary>
    /// Seals the oldest unsealed ops of a share into one batch (by MaxBatchOps and MaxBatchBytes):
    /// the batch row (its id and seq range) is committed before anything is sent. Null when
    /// nothing is waiting. Op rows are never rewritten: each value reaches the disk once.
    /// </summary>
    public async Task<SealedBatch?> SealNextBatchAsync(string shareId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var producer = ReadProducer(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
            var ops = new List<byte[]>();
            var first = producer.SealedSeq + 1;
            long bytes = 0;
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = "SELECT op FROM ops WHERE share_id = $s AND seq >= $f ORDER BY seq LIMIT $n";
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$f", (long)first);
                cmd.Parameters.AddWithValue("$n", _options.MaxBatchOps);
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    var b = (byte[])r.GetValue(0);
                    if (ops.Count > 0 && bytes + b.Length > _options.MaxBatchBytes)
                    {
                        break;
                    }

                    ops.Add(b);
                    bytes += b.Length;
                }
            }

            if (ops.Count == 0)
            {
                return null;
            }

            var batchId = Guid.CreateVersion7().ToString();
            var last = first + (ulong)ops.Count - 1;
            using var tx = _db.BeginTransaction();
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    INSERT INTO batches(batch_id, share_id, first_seq, last_seq, op_count, state, sealed_at)
                    VALUES ($b, $s, $f, $l, $c, 1, $t)
                    """;
                cmd.Parameters.AddWithValue("$b", batchId);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$f", (long)first);
                cmd.Parameters.AddWithValue("$l", (long)last);
                cmd.Parameters.AddWithValue("$c", ops.Count);
                cmd.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                cmd.ExecuteNonQuery();
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE producers SET sealed_seq = $l WHERE share_id = $s AND sealed_seq = $prev";
                cmd.Parameters.AddWithValue("$l", (long)last);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$prev", (long)producer.SealedSeq);
                if (cmd.ExecuteNonQuery() != 1)
                {
                    throw new InvalidOperationException($"Sealing {batchId}: another sealer moved share {shareId}.");
                }
            }

            tx.Commit();
            return new SealedBatch(batchId, shareId, first, last, ops.Count, BuildRequest(batchId, producer.ProducerId, ops));
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// Every sealed, unacked batch of a share whose last seq is at least <paramref name="fromSeq"/>,
    /// oldest first: what a reconnect resends. The request bytes are rebuilt from the stored
    /// (immutable) op bytes, the batch id and the producer id — the same bytes every time.
    /// </summary>
    public async Task<IReadOnlyList<SealedBatch>> GetUnackedBatchesAsync(string shareId, ulong fromSeq = 0, int limit = int.MaxValue)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var producer = ReadProducer(shareId);
            if (producer is null)
            {
                return Array.Empty<SealedBatch>();
            }

            var rows = new List<(string Id, ulong First, ulong Last, int Count)>();
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = """
                    SELECT batch_id, first_seq, last_seq, op_count FROM batches
                    WHERE share_id = $s AND state = 1 AND last_seq >= $f ORDER BY first_seq LIMIT $n
                    """;
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$f", (long)fromSeq);
                cmd.Parameters.AddWithValue("$n", limit);
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    rows.Add((r.GetString(0), (ulong)r.GetInt64(1), (ulong)r.GetInt64(2), r.GetInt32(3)));
                }
            }

            var list = new List<SealedBatch>(rows.Count);
            foreach (var (id, first, last, count) in rows)
            {
                var ops = ReadOps(shareId, first, last);
                if (ops.Count != count)
                {
                    throw new InvalidOperationException($"Batch {id} holds {count} ops but {ops.Count} are in the outbox.");
                }

                list.Add(new SealedBatch(id, shareId, first, last, count, BuildRequest(id, producer.ProducerId, ops)));
            }

            return list;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// Records an accepted batch's acks in one transaction: the batch row takes the response
    /// (per-op outcomes are read from it when asked), rejected ops are also kept in their own
    /// table, and the producer's acked seq advances. Returns the outcomes. An ack for a batch that
    /// is not sealed here (already acked) changes nothing and returns none.
    /// </summary>
    public async Task<IReadOnlyList<OpOutcome>> RecordAckAsync(string shareId, AppendOpsResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.BatchStatus != BatchStatus.Accepted)
        {
            throw new ArgumentException($"Only accepted batches are recorded; {response.BatchId} is {response.BatchStatus}.", nameof(response));
        }

        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            using var tx = _db.BeginTransaction();
            long firstSeq, lastSeq;
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE batches SET state = 2, acked_at = $t, response = $r WHERE batch_id = $b AND share_id = $s AND state = 1 RETURNING first_seq, last_seq";
                cmd.Parameters.AddWithValue("$b", response.BatchId);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$t", now);
                cmd.Parameters.AddWithValue("$r", response.ToByteArray());
                using var r = cmd.ExecuteReader();
                if (!r.Read())
                {
                    return Array.Empty<OpOutcome>();
                }

                firstSeq = r.GetInt64(0);
                lastSeq = r.GetInt64(1);
            }

            var outcomes = new List<OpOutcome>(response.Acks.Count);
            var rejected = 0;
            foreach (var ack in response.Acks)
            {
                outcomes.Add(ToOutcome(ack));
                if (ack.Status != OpStatus.Rejected)
                {
                    continue;
                }

                rejected++;
                using var cmd = _db.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = """
                    INSERT OR REPLACE INTO rejections(op_id, share_id, seq, reason, detail, acked_at)
                    SELECT $id, $s, seq, $rr, $d, $t FROM ops WHERE op_id = $id AND share_id = $s AND seq BETWEEN $f AND $l
                    """;
                cmd.Parameters.AddWithValue("$id", ack.OpId);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$rr", (int)ack.RejectReason);
                cmd.Parameters.AddWithValue("$d", ack.Detail ?? "");
                cmd.Parameters.AddWithValue("$t", now);
                cmd.Parameters.AddWithValue("$f", firstSeq);
                cmd.Parameters.AddWithValue("$l", lastSeq);
                cmd.ExecuteNonQuery();
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE producers SET acked_seq = MAX(acked_seq, $l), rejected = rejected + $n WHERE share_id = $s";
                cmd.Parameters.AddWithValue("$l", lastSeq);
                cmd.Parameters.AddWithValue("$n", rejected);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
            return outcomes;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// The AppendOpsRequest bytes for a batch: fields 1 and 2, then each stored op as field 3 —
    /// exactly what protobuf would write for the whole message, without parsing any op again.
    /// </summary>
    private static byte[] BuildRequest(string batchId, string producerId, List<byte[]> ops)
    {
        var head = new AppendOpsRequest { BatchId = batchId, ProducerId = producerId }.ToByteArray();
        var size = head.Length;
        foreach (var op in ops)
        {
            size += 1 + CodedOutputStream.ComputeLengthSize(op.Length) + op.Length;
        }

        var bytes = new byte[size];
        head.CopyTo(bytes, 0);
        var at = head.Length;
        foreach (var op in ops)
        {
            bytes[at++] = OpsFieldTag;
            // Base-128 varint length (protobuf encoding).
            var len = (uint)op.Length;
            while (len >= 0x80)
            {
                bytes[at++] = (byte)(len | 0x80);
                len >>= 7;
            }

            bytes[at++] = (byte)len;
            op.CopyTo(bytes, at);
            at += op.Length;
        }

        return at == size ? bytes : throw new InvalidOperationException("Batch size miscounted.");
    }

    private List<byte[]> ReadOps(string shareId, ulong first, ulong last)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT op FROM ops WHERE share_id = $s AND seq BETWEEN $f AND $l ORDER BY seq";
        cmd.Parameters.AddWithValue("$s", shareId);
        cmd.Parameters.AddWithValue("$f", (long)first);
        cmd.Parameters.AddWithValue("$l", (long)last);
        var ops = new List<byte[]>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            ops.Add((byte[])r.GetValue(0));
        }

        return ops;
    }
}
