// OutboxStore: making ops durable, with concurrent enqueues sharing one commit (group commit).
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>An op made durable: its id and its place in the producer's sequence.</summary>
internal sealed record EnqueuedOp(string OpId, ulong Seq);

internal sealed partial class OutboxStore
{
    private const int SqliteConstraint = 19;

    /// <summary>
    /// Makes the op durable and returns its id and seq. The op id is made here (UUIDv7) unless
    /// the caller set one. Concurrent calls share one commit (and one fsync): <see cref="GroupCommitQueue"/>.
    /// </summary>
    public Task<EnqueuedOp> EnqueueAsync(string shareId, Op op) => _enqueues.EnqueueAsync(shareId, op);

    /// <summary>What an enqueue's caller sees of a failed group commit: SQLite's damage as OutboxCorruptException.</summary>
    private Exception DescribeCommitError(Exception ex) =>
        ex is SqliteException s && IsDamage(s) ? Damaged("SQLite cannot write it: " + s.Message, s) : ex;

    private void CommitGroup(List<EnqueueRequest> group)
    {
        var results = new List<(EnqueueRequest Request, EnqueuedOp Result)>(group.Count);
        using var tx = _db.BeginTransaction();
        var nextSeq = new Dictionary<string, ulong>(StringComparer.Ordinal);
        using var insert = new OpInsert(_db, tx, NowMs(), ignoreTakenOpId: false);
        foreach (var r in group)
        {
            if (!nextSeq.TryGetValue(r.ShareId, out var seq))
            {
                if (ReadNextSeq(r.ShareId, tx) is not { } stored)
                {
                    r.Done.TrySetException(new InvalidOperationException($"No producer for share {r.ShareId}: call EnsureProducerAsync first."));
                    continue;
                }

                seq = stored;
            }

            if (_hasSetAside && IsSetAside(r.Op.OpId, tx))
            {
                r.Done.TrySetException(new ArgumentException($"Op id {r.Op.OpId} is set aside in this outbox: retry or drop it (ShareWriter.RetryPoisonOpAsync)."));
                continue;
            }

            r.Op.Seq = seq;
            try
            {
                insert.Run(r.ShareId, r.Op);
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteConstraint && ex.Message.Contains("ops.op_id", StringComparison.Ordinal))
            {
                // UNIQUE(op_id): the caller reused an op id; refuse it alone.
                r.Done.TrySetException(new ArgumentException($"Op id {r.Op.OpId} is already in this outbox.", ex));
                continue;
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteConstraint)
            {
                throw Damaged($"seq {seq} of share {r.ShareId} is taken although the producer row says it is next (the producer row is behind its ops).", ex);
            }

            nextSeq[r.ShareId] = seq + 1;
            results.Add((r, new EnqueuedOp(r.Op.OpId, seq)));
        }

        foreach (var (share, next) in nextSeq)
        {
            WriteNextSeq(share, next, tx);
        }

        tx.Commit();
        _checkpointer.Committed();
        foreach (var (request, result) in results)
        {
            request.Done.TrySetResult(result);
        }
    }

    private ulong? ReadNextSeq(string shareId, SqliteTransaction tx)
    {
        using var get = _db.CreateCommand();
        get.Transaction = tx;
        get.CommandText = "SELECT next_seq FROM producers WHERE share_id = $s";
        get.Parameters.AddWithValue("$s", shareId);
        return get.ExecuteScalar() is long v ? (ulong)v : null;
    }

    private void WriteNextSeq(string shareId, ulong next, SqliteTransaction tx)
    {
        using var update = _db.CreateCommand();
        update.Transaction = tx;
        update.CommandText = "UPDATE producers SET next_seq = $n WHERE share_id = $s";
        update.Parameters.AddWithValue("$n", (long)next);
        update.Parameters.AddWithValue("$s", shareId);
        update.ExecuteNonQuery();
    }

    /// <summary>The one prepared INSERT of op rows: the op bytes (with their seq) and their checksum.</summary>
    private sealed class OpInsert : IDisposable
    {
        private readonly SqliteCommand _cmd;
        private readonly SqliteParameter _share, _seq, _id, _op, _crc;

        public OpInsert(SqliteConnection db, SqliteTransaction tx, long now, bool ignoreTakenOpId)
        {
            _cmd = db.CreateCommand();
            _cmd.Transaction = tx;
            // Only a taken op id is ignored (bulk enqueue reports it); a taken seq always fails.
            _cmd.CommandText = "INSERT INTO ops(share_id, seq, op_id, op, enqueued_at, crc) VALUES ($s, $q, $id, $op, $t, $crc)"
                + (ignoreTakenOpId ? " ON CONFLICT(op_id) DO NOTHING" : "");
            _share = _cmd.Parameters.Add("$s", SqliteType.Text);
            _seq = _cmd.Parameters.Add("$q", SqliteType.Integer);
            _id = _cmd.Parameters.Add("$id", SqliteType.Text);
            _op = _cmd.Parameters.Add("$op", SqliteType.Blob);
            _crc = _cmd.Parameters.Add("$crc", SqliteType.Integer);
            _cmd.Parameters.AddWithValue("$t", now);
        }

        /// <summary>Inserts the op (its Seq already set); false when its op id was taken and ignored.</summary>
        public bool Run(string shareId, Op op)
        {
            var bytes = op.ToByteArray();
            _share.Value = shareId;
            _seq.Value = (long)op.Seq;
            _id.Value = op.OpId;
            _op.Value = bytes;
            _crc.Value = (long)Crc32C.OfOpRow(op.Seq, bytes);
            return _cmd.ExecuteNonQuery() == 1;
        }

        public void Dispose() => _cmd.Dispose();
    }
}
