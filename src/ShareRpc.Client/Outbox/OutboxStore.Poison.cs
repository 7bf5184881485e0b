// OutboxStore: poison ops (docs/client.md, "Poison ops"): taken out of the sequence with the server's reason,
// listed, dropped or enqueued again at the end.
using Grpc.Core;
using Microsoft.Data.Sqlite;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// An op the server refused at call level (INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming it in
/// <c>sharerpc-field</c>), set aside so the ops behind it keep flowing. It stays in the outbox until
/// the application drops it or retries it (docs/client.md, "Poison ops").
/// </summary>
/// <param name="ShareId">The share it was written to.</param>
/// <param name="OpId">Its op id (a retry keeps it).</param>
/// <param name="Seq">Its seq in the outbox when it was set aside.</param>
/// <param name="Op">The op itself.</param>
/// <param name="Status">The gRPC status of the refusal.</param>
/// <param name="Reason">The server's <c>sharerpc-reason</c>, e.g. <c>limit</c>.</param>
/// <param name="Field">The field the server named, relative to the op (e.g. <c>put.value</c>).</param>
/// <param name="Detail">The server's message, e.g. <c>ops[0].put.value: 2000000 bytes exceeds MaxValueBytes = 1048576 bytes</c>.</param>
/// <param name="SetAsideAt">When it was set aside.</param>
public sealed record PoisonOp(string ShareId, string OpId, ulong Seq, Op Op, StatusCode Status, string? Reason, string? Field, string Detail, DateTimeOffset SetAsideAt)
{
    /// <summary>The refusal as the exception a waiter on the op's ack gets.</summary>
    internal ShareRpcCallException ToException()
    {
        var trailers = new Metadata();
        if (Reason is not null)
        {
            trailers.Add(Reasons.TrailerName, Reason);
        }

        return new ShareRpcCallException(new Status(Status, $"op {OpId} was set aside: {Detail}"), trailers);
    }
}

internal sealed partial class OutboxStore
{
    // set_aside.state: 0 set aside (waiting for the application), 1 dropped, 2 enqueued again.
    private const int SetAsideWaiting = 0;
    private const int SetAsideDropped = 1;
    private const int SetAsideRetried = 2;

    // True once any op is set aside: only then does an enqueue look its op id up in set_aside.
    private volatile bool _hasSetAside;

    /// <summary>
    /// Sets aside op <paramref name="opIndex"/> of the batch the server refused at call level, in one
    /// transaction: the op moves to set_aside with the refusal; every unacked batch of the share is
    /// unsealed (the refused one and those sent after it: the server applied none of them), so its
    /// ops are sealed again into new batches whose wire seqs close the hole. Null when the refused
    /// batch is not the share's oldest unacked one (the refusal cannot be placed: the caller stops).
    /// </summary>
    public Task<PoisonOp?> SetAsideAsync(string shareId, string batchId, int opIndex, ShareRpcCallException refusal, string? field) => WithDbAsync(() =>
    {
        using var tx = _db.BeginTransaction();
        string? headId = null;
        ulong first = 0, last = 0, wireFirst = 0;
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT batch_id, first_seq, last_seq, COALESCE(wire_first_seq, first_seq) FROM batches WHERE share_id = $s AND state = 1 ORDER BY first_seq LIMIT 1";
            cmd.Parameters.AddWithValue("$s", shareId);
            using var r = cmd.ExecuteReader();
            if (r.Read())
            {
                (headId, first, last, wireFirst) = (r.GetString(0), (ulong)r.GetInt64(1), (ulong)r.GetInt64(2), (ulong)r.GetInt64(3));
            }
        }

        if (headId != batchId || opIndex < 0 || (ulong)opIndex > last - first)
        {
            return null;
        }

        var row = ReadBatchRows(shareId, batchId, first, last)[opIndex];
        var op = Op.Parser.ParseFrom(row.Bytes);
        var poison = new PoisonOp(shareId, op.OpId, row.Seq, op, refusal.StatusCode, refusal.Reason, field, refusal.Status.Detail, _time.GetUtcNow());
        Exec(tx, """
            INSERT INTO set_aside(share_id, seq, op_id, op, crc, status, reason, field, detail, set_aside_at, state)
            VALUES ($s, $q, $id, $op, $crc, $status, $reason, $field, $detail, $t, 0)
            """,
            ("$s", shareId), ("$q", (long)row.Seq), ("$id", op.OpId), ("$op", row.Bytes), ("$crc", (long)Crc32C.OfOpRow(row.Seq, row.Bytes)),
            ("$status", (int)poison.Status), ("$reason", poison.Reason), ("$field", field), ("$detail", poison.Detail), ("$t", poison.SetAsideAt.ToUnixTimeMilliseconds()));
        Exec(tx, "DELETE FROM ops WHERE share_id = $s AND seq = $q", ("$s", shareId), ("$q", (long)row.Seq));
        Exec(tx, "DELETE FROM batches WHERE share_id = $s AND state = 1", ("$s", shareId));
        Exec(tx, "UPDATE producers SET sealed_seq = $f, wire_sealed_seq = $w WHERE share_id = $s",
            ("$f", (long)(first - 1)), ("$w", (long)(wireFirst - 1)), ("$s", shareId));
        tx.Commit();
        _hasSetAside = true;
        return poison;
    });

    /// <summary>The ops set aside and waiting for the application (of one share, or of all), oldest first.</summary>
    public Task<IReadOnlyList<PoisonOp>> GetPoisonOpsAsync(string? shareId = null) => WithDbAsync<IReadOnlyList<PoisonOp>>(() =>
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"{SelectPoison} WHERE state = {SetAsideWaiting} AND ($s IS NULL OR share_id = $s) ORDER BY share_id, seq";
        cmd.Parameters.AddWithValue("$s", (object?)shareId ?? DBNull.Value);
        return ReadPoison(cmd);
    });

    /// <summary>The op with this id if it is set aside and waiting, else null.</summary>
    public Task<PoisonOp?> GetPoisonOpAsync(string opId) => WithDbAsync(() =>
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"{SelectPoison} WHERE op_id = $id AND state = {SetAsideWaiting}";
        cmd.Parameters.AddWithValue("$id", opId);
        return ReadPoison(cmd).FirstOrDefault();
    });

    /// <summary>Drops a poison op for good (it is never sent); false when no op with this id is set aside.</summary>
    public Task<bool> DropPoisonOpAsync(string opId) => WithDbAsync(() =>
    {
        using var cmd = _db.CreateCommand();
        // The row stays, without the op, as the hole it left in the seqs until compaction passes it.
        cmd.CommandText = $"UPDATE set_aside SET state = {SetAsideDropped}, op = x'' WHERE op_id = $id AND state = {SetAsideWaiting}";
        cmd.Parameters.AddWithValue("$id", opId);
        return cmd.ExecuteNonQuery() > 0;
    });

    /// <summary>
    /// Enqueues a poison op again, with the same op id, at the end of its share's sequence (after
    /// every op enqueued so far), e.g. once the server's limits allow it. Null when no op with this
    /// id is set aside.
    /// </summary>
    public Task<EnqueuedOp?> RetryPoisonOpAsync(string opId) => WithDbAsync(() =>
    {
        using var tx = _db.BeginTransaction();
        string shareId;
        ulong oldSeq;
        Op op;
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = $"SELECT share_id, seq, op FROM set_aside WHERE op_id = $id AND state = {SetAsideWaiting}";
            cmd.Parameters.AddWithValue("$id", opId);
            using var r = cmd.ExecuteReader();
            if (!r.Read())
            {
                return null;
            }

            (shareId, oldSeq, op) = (r.GetString(0), (ulong)r.GetInt64(1), Op.Parser.ParseFrom((byte[])r.GetValue(2)));
        }

        var seq = ReadNextSeq(shareId, tx) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
        op.Seq = seq;
        using (var insert = new OpInsert(_db, tx, NowMs(), ignoreTakenOpId: false))
        {
            insert.Run(shareId, op);
        }

        Exec(tx, $"UPDATE set_aside SET state = {SetAsideRetried}, op = x'' WHERE share_id = $s AND seq = $q", ("$s", shareId), ("$q", (long)oldSeq));
        WriteNextSeq(shareId, seq + 1, tx);
        tx.Commit();
        return new EnqueuedOp(op.OpId, seq);
    });

    /// <summary>Seqs after <paramref name="afterSeq"/> that an op set aside left empty (few: one per poison op).</summary>
    private HashSet<ulong> ReadHoles(string shareId, ulong afterSeq)
    {
        var holes = new HashSet<ulong>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT seq FROM set_aside WHERE share_id = $s AND seq > $a";
        cmd.Parameters.AddWithValue("$s", shareId);
        cmd.Parameters.AddWithValue("$a", (long)afterSeq);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            holes.Add((ulong)r.GetInt64(0));
        }

        return holes;
    }

    private bool IsSetAside(string opId, SqliteTransaction tx)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"SELECT 1 FROM set_aside WHERE op_id = $id AND state = {SetAsideWaiting}";
        cmd.Parameters.AddWithValue("$id", opId);
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>Ops set aside and waiting, in the whole outbox.</summary>
    private long CountSetAside()
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM set_aside WHERE state = {SetAsideWaiting}";
        return (long)cmd.ExecuteScalar()!;
    }

    private const string SelectPoison = "SELECT share_id, seq, op_id, op, status, reason, field, detail, set_aside_at FROM set_aside";

    private static List<PoisonOp> ReadPoison(SqliteCommand cmd)
    {
        var list = new List<PoisonOp>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            list.Add(new PoisonOp(r.GetString(0), r.GetString(2), (ulong)r.GetInt64(1), Op.Parser.ParseFrom((byte[])r.GetValue(3)), (StatusCode)r.GetInt32(4),
                r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetString(7), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(8))));
        }

        return list;
    }

    /// <summary>One statement in <paramref name="tx"/> with named parameters (null is SQL NULL).</summary>
    private int Exec(SqliteTransaction tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return cmd.ExecuteNonQuery();
    }
}
