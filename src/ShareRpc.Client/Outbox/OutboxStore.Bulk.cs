// OutboxStore: enqueueing many ops in one commit (the CLI's append), where an op id already here is reported, not an error.
using Microsoft.Data.Sqlite;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>Where one op of a bulk enqueue stands.</summary>
internal enum BulkOutcome
{
    /// <summary>Made durable now, at <see cref="BulkEnqueued.Seq"/>.</summary>
    New,

    /// <summary>Its op id was already in this outbox (an earlier run enqueued it): it was not enqueued again.</summary>
    InOutbox,

    /// <summary>Its op id is set aside here as a poison op: it was not enqueued again.</summary>
    SetAside,
}

/// <summary>One op of a bulk enqueue: its outcome and its seq (the earlier one when it was already here).</summary>
internal readonly record struct BulkEnqueued(ulong Seq, BulkOutcome Outcome);

internal sealed partial class OutboxStore
{
    /// <summary>
    /// Makes every op durable in one transaction, in order, at consecutive seqs; an op whose id is
    /// already in this outbox for the share is not enqueued twice (an op id names one op: the
    /// server would answer DUPLICATE for it), and reported. Sets each new op's seq (and its id,
    /// UUIDv7, when empty) on the given objects. All or nothing: an error leaves none of them durable.
    /// </summary>
    /// <param name="shareId">The share whose producer takes the seqs.</param>
    /// <param name="ops">The ops, in order; each new one gets its seq (and id) set.</param>
    /// <param name="refuseSetAside">An op id set aside here throws <see cref="ArgumentException"/> (and nothing is durable) instead of being reported.</param>
    public Task<BulkEnqueued[]> EnqueueBulkAsync(string shareId, IReadOnlyList<Op> ops, bool refuseSetAside = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentNullException.ThrowIfNull(ops);
        return WithDbAsync(() =>
        {
            using var tx = _db.BeginTransaction();
            var next = ReadNextSeq(shareId, tx) ?? throw new InvalidOperationException($"No producer for share {shareId}: call EnsureProducerAsync first.");
            using var insert = new OpInsert(_db, tx, NowMs(), ignoreTakenOpId: true);
            var results = new BulkEnqueued[ops.Count];
            for (var i = 0; i < ops.Count; i++)
            {
                var op = ops[i];
                OutboxRows.Identify(op, $"Op {i}", nameof(ops));

                if (_hasSetAside && IsSetAside(op.OpId, tx))
                {
                    if (refuseSetAside)
                    {
                        throw new ArgumentException($"Op id {op.OpId} is set aside in this outbox: retry or drop it (ShareWriter.RetryPoisonOpAsync).", nameof(ops));
                    }

                    results[i] = new BulkEnqueued(0, BulkOutcome.SetAside);
                    continue;
                }

                op.Seq = next;
                bool inserted;
                try
                {
                    inserted = insert.Run(shareId, op);
                }
                catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteConstraint)
                {
                    throw Damaged($"seq {next} of share {shareId} is taken although the producer row says it is next (the producer row is behind its ops).", ex);
                }

                results[i] = inserted ? new BulkEnqueued(next++, BulkOutcome.New) : new BulkEnqueued(ExistingSeq(shareId, op.OpId, tx), BulkOutcome.InOutbox);
            }

            WriteNextSeq(shareId, next, tx);
            tx.Commit();
            return results;
        });
    }

    /// <summary>The seq of an op id already in the outbox; an op id of another share is the caller's error.</summary>
    private ulong ExistingSeq(string shareId, string opId, SqliteTransaction tx)
    {
        using var find = _db.CreateCommand();
        find.Transaction = tx;
        find.CommandText = "SELECT share_id, seq FROM ops WHERE op_id = $id";
        find.Parameters.AddWithValue("$id", opId);
        using var r = find.ExecuteReader();
        if (!r.Read())
        {
            throw new InvalidOperationException($"Op id {opId} was reported taken but is not in the outbox.");
        }

        return r.GetString(0) == shareId
            ? (ulong)r.GetInt64(1)
            : throw new ArgumentException($"Op id {opId} is already in this outbox for another share ({r.GetString(0)}).");
    }
}
