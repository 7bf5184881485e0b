// OutboxStore: sealing ops into batches, the unacked batches a reconnect resends, and recording acks.
using Google.Protobuf;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// A sealed batch: its membership and its exact request bytes were written before the first
/// send and never change, so every resend is byte-for-byte the same. FirstSeq..LastSeq are
/// outbox seqs (consecutive); on the wire its ops carry WireFirstSeq onwards. EnqueuedAtMs holds
/// when each op was enqueued (Unix ms), read with the rows, for the enqueue-to-ack histogram.
/// </summary>
internal sealed record SealedBatch(string BatchId, string ShareId, ulong FirstSeq, ulong LastSeq, int OpCount, byte[] RequestBytes, ulong WireFirstSeq, long[] EnqueuedAtMs)
{
    public AppendOpsRequest Parse() => AppendOpsRequest.Parser.ParseFrom(RequestBytes);
}

internal sealed partial class OutboxStore
{
    /// <summary>
    /// Seals the oldest unsealed ops of a share into one batch (by MaxBatchOps and MaxBatchBytes):
    /// the batch row (its id and seq range) is committed before anything is sent. Null when
    /// nothing is waiting. Op rows are never rewritten: each value reaches the disk once. Each row
    /// is checked (its checksum, and that no seq is missing) before it is sealed; a batch ends
    /// where an op was set aside, so its outbox seqs stay consecutive.
    /// </summary>
    public Task<SealedBatch?> SealNextBatchAsync(string shareId) => WithDbAsync<SealedBatch?>(() =>
    {
        var producer = ReadProducer(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
        var holes = ReadHoles(shareId, producer.SealedSeq);
        var first = OutboxRows.FirstToSeal(producer.SealedSeq, holes);

        var rows = ReadRowsToSeal(shareId, first, holes);
        if (rows.Count == 0)
        {
            return first < producer.NextSeq
                ? throw Damaged($"the op rows of share {shareId} from seq {first} on are missing, but its producer has enqueued up to seq {producer.NextSeq - 1}.")
                : null;
        }

        var batchId = Guid.CreateVersion7().ToString();
        var last = first + (ulong)rows.Count - 1;
        var wireFirst = producer.WireSealedSeq + 1;
        using var relaxed = RelaxSync(); // a seal lost with power is sealed again (docs/client.md, "What each commit costs")
        using var tx = _db.BeginTransaction();
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO batches(batch_id, share_id, first_seq, last_seq, op_count, state, sealed_at, wire_first_seq)
                VALUES ($b, $s, $f, $l, $c, 1, $t, $w)
                """;
            cmd.Parameters.AddWithValue("$b", batchId);
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.Parameters.AddWithValue("$f", (long)first);
            cmd.Parameters.AddWithValue("$l", (long)last);
            cmd.Parameters.AddWithValue("$c", rows.Count);
            cmd.Parameters.AddWithValue("$t", NowMs());
            cmd.Parameters.AddWithValue("$w", (long)wireFirst);
            cmd.ExecuteNonQuery();
        }

        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "UPDATE producers SET sealed_seq = $l, wire_sealed_seq = $wl WHERE share_id = $s AND sealed_seq = $prev";
            cmd.Parameters.AddWithValue("$l", (long)last);
            cmd.Parameters.AddWithValue("$wl", (long)(wireFirst + (ulong)rows.Count - 1));
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.Parameters.AddWithValue("$prev", (long)producer.SealedSeq);
            if (cmd.ExecuteNonQuery() != 1)
            {
                throw new InvalidOperationException($"Sealing {batchId}: another sealer moved share {shareId}.");
            }
        }

        tx.Commit();
        return new SealedBatch(batchId, shareId, first, last, rows.Count, BuildRequest(batchId, producer.ProducerId, rows, wireFirst), wireFirst, EnqueueTimes(rows));
    });

    /// <summary>
    /// Up to MaxBatchOps rows from <paramref name="first"/> on, consecutive and within MaxBatchBytes
    /// (one larger op alone); stops before a hole an op set aside left. Only that many rows are
    /// read: memory does not grow with the backlog.
    /// </summary>
    private List<OpRow> ReadRowsToSeal(string shareId, ulong first, HashSet<ulong> holes)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT seq, op, crc, enqueued_at FROM ops WHERE share_id = $s AND seq >= $f ORDER BY seq LIMIT $n";
        cmd.Parameters.AddWithValue("$s", shareId);
        cmd.Parameters.AddWithValue("$f", (long)first);
        cmd.Parameters.AddWithValue("$n", _options.MaxBatchOps);
        return OutboxRows.ToSeal(Unread(cmd), first, holes, _options.MaxBatchBytes, (expected, found) => Damaged(
            $"the op row at seq {expected} of share {shareId} is missing (seq {found} follows seq {expected - 1}). Nothing from seq {expected} on was sent."));
    }

    /// <summary>Each row's seq, and how to read it (checking its checksum) while the reader stands on it.</summary>
    private IEnumerable<(ulong Seq, Func<OpRow> Read)> Unread(Microsoft.Data.Sqlite.SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            yield return ((ulong)r.GetInt64(0), () => ReadRow(r));
        }
    }

    /// <summary>
    /// Every sealed, unacked batch of a share whose last seq is at least <paramref name="fromSeq"/>,
    /// oldest first: what a reconnect resends. The request bytes are rebuilt from the stored
    /// (immutable, checked) op bytes, the batch id and the producer id — the same bytes every time.
    /// </summary>
    public Task<IReadOnlyList<SealedBatch>> GetUnackedBatchesAsync(string shareId, ulong fromSeq = 0, int limit = int.MaxValue) => WithDbAsync<IReadOnlyList<SealedBatch>>(() =>
    {
        var producer = ReadProducer(shareId);
        if (producer is null)
        {
            return Array.Empty<SealedBatch>();
        }

        var batches = new List<(string Id, ulong First, ulong Last, int Count, ulong WireFirst)>();
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = """
                SELECT batch_id, first_seq, last_seq, op_count, COALESCE(wire_first_seq, first_seq) FROM batches
                WHERE share_id = $s AND state = 1 AND last_seq >= $f ORDER BY first_seq LIMIT $n
                """;
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.Parameters.AddWithValue("$f", (long)fromSeq);
            cmd.Parameters.AddWithValue("$n", limit);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                batches.Add((r.GetString(0), (ulong)r.GetInt64(1), (ulong)r.GetInt64(2), r.GetInt32(3), (ulong)r.GetInt64(4)));
            }
        }

        var list = new List<SealedBatch>(batches.Count);
        foreach (var (id, first, last, count, wireFirst) in batches)
        {
            var rows = ReadBatchRows(shareId, id, first, last);
            if (rows.Count != count)
            {
                throw Damaged($"batch {id} of share {shareId} says it holds {count} ops, but seqs {first}..{last} hold {rows.Count}.");
            }

            list.Add(new SealedBatch(id, shareId, first, last, count, BuildRequest(id, producer.ProducerId, rows, wireFirst), wireFirst, EnqueueTimes(rows)));
        }

        return list;
    });

    internal static long[] EnqueueTimes(List<OpRow> rows)
    {
        var times = new long[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            times[i] = rows[i].EnqueuedAtMs;
        }

        return times;
    }

    /// <summary>
    /// Records an accepted batch's acks in one transaction: the batch row takes the response
    /// (per-op outcomes are read from it when asked), rejected ops are also kept in their own
    /// table, and the producer's acked seq advances. Returns the outcomes. An ack for a batch that
    /// is not sealed here (already acked) changes nothing and returns none.
    /// </summary>
    public Task<IReadOnlyList<OpOutcome>> RecordAckAsync(string shareId, AppendOpsResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.BatchStatus != BatchStatus.Accepted)
        {
            throw new ArgumentException($"Only accepted batches are recorded; {response.BatchId} is {response.BatchStatus}.", nameof(response));
        }

        return WithDbAsync<IReadOnlyList<OpOutcome>>(() =>
        {
            var now = NowMs();
            using var relaxed = RelaxSync(); // an ack lost with power is asked for again by the resend
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
                if (ack.Status == OpStatus.Rejected)
                {
                    rejected++;
                    RecordRejection(shareId, ack, firstSeq, lastSeq, now, tx);
                }
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
        });
    }

    private void RecordRejection(string shareId, OpAck ack, long firstSeq, long lastSeq, long now, Microsoft.Data.Sqlite.SqliteTransaction tx)
    {
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
}
