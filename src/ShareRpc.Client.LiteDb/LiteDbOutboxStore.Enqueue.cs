// LiteDbOutboxStore: making ops durable, one at a time with concurrent enqueues sharing one commit (group
// commit, as the SQLite store's committer does), or many in one commit (the CLI's append).
using System.Globalization;
using Google.Protobuf;
using LiteDB;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.LiteDb;

internal sealed partial class LiteDbOutboxStore
{
    // Seqs in keys: 20 digits, so that the ordinal order of keys is the order of seqs within a share.
    private const string SeqFormat = "D20";
    private const char KeySeparator = '\u001f';

    /// <summary>The key of the row at <paramref name="seq"/> of a share (ops, set_aside): ordered by share, then seq.</summary>
    private static string RowKey(string shareId, ulong seq) => shareId + KeySeparator + ((long)Math.Min(seq, long.MaxValue)).ToString(SeqFormat, CultureInfo.InvariantCulture);

    /// <summary>Rows of a share from seq <paramref name="from"/> to <paramref name="to"/>, in key (seq) order.</summary>
    private static BsonExpression RowRange(string shareId, ulong from, ulong to = long.MaxValue) => Query.Between("_id", RowKey(shareId, from), RowKey(shareId, to));

    /// <summary>A share's op rows from seq <paramref name="from"/> to <paramref name="to"/>, in seq order (the _id index), at most <paramref name="limit"/>.</summary>
    private IEnumerable<BsonDocument> OpRows(string shareId, ulong from, ulong to = long.MaxValue, int limit = int.MaxValue) =>
        _ops.Query().Where(RowRange(shareId, from, to)).OrderBy("_id").Limit(limit).ToEnumerable();

    /// <summary>Makes the op durable and returns its id and seq; concurrent calls share one commit (<see cref="GroupCommitQueue"/>).</summary>
    public Task<EnqueuedOp> EnqueueAsync(string shareId, Op op) => _enqueues.EnqueueAsync(shareId, op);

    /// <summary>One group in one transaction; only after its commit (and fsync) returned does an enqueue return.</summary>
    private void CommitGroupDurably(List<EnqueueRequest> group)
    {
        foreach (var (request, result) in InTransaction(() => CommitGroup(group)))
        {
            request.Done.TrySetResult(result);
        }
    }

    /// <summary>What an enqueue's caller sees of a failed group commit: LiteDB's damage as OutboxCorruptException.</summary>
    private Exception DescribeCommitError(Exception ex) =>
        ex is LiteException l && IsDamage(l) ? Damaged("LiteDB cannot write it: " + l.Message, l) : ex;

    /// <summary>
    /// Writes a group's ops in the open transaction; a request refused alone (no producer, an op id set aside
    /// or already here) fails now and takes no seq. LiteDB rolls the whole transaction back when one of its
    /// calls throws, so every refusal is a lookup made before the insert.
    /// </summary>
    private List<(EnqueueRequest Request, EnqueuedOp Result)> CommitGroup(List<EnqueueRequest> group)
    {
        var results = new List<(EnqueueRequest, EnqueuedOp)>(group.Count);
        var producers = new Dictionary<string, BsonDocument>(StringComparer.Ordinal);
        var now = NowMs();
        foreach (var r in group)
        {
            if (!producers.TryGetValue(r.ShareId, out var producer))
            {
                if (_producers.FindById(r.ShareId) is not { } stored)
                {
                    r.Done.TrySetException(new InvalidOperationException($"No producer for share {r.ShareId}: call EnsureProducerAsync first."));
                    continue;
                }

                producers[r.ShareId] = producer = stored;
            }

            if (_hasSetAside && IsSetAside(r.Op.OpId))
            {
                r.Done.TrySetException(new ArgumentException($"Op id {r.Op.OpId} is set aside in this outbox: retry or drop it (ShareWriter.RetryPoisonOpAsync)."));
                continue;
            }

            if (FindOp(r.Op.OpId) is not null)
            {
                r.Done.TrySetException(new ArgumentException($"Op id {r.Op.OpId} is already in this outbox."));
                continue;
            }

            var seq = (ulong)producer["next_seq"].AsInt64;
            r.Op.Seq = seq;
            InsertOp(r.ShareId, r.Op, now);
            producer["next_seq"] = (long)seq + 1;
            results.Add((r, new EnqueuedOp(r.Op.OpId, seq)));
        }

        foreach (var producer in producers.Values)
        {
            _producers.Update(producer);
        }

        return results;
    }

    /// <summary>
    /// Makes every op durable in one commit, in order, at consecutive seqs; an op whose id is already here is
    /// reported, not enqueued twice. All or nothing (see the SQLite store's EnqueueBulkAsync for the contract).
    /// </summary>
    public Task<BulkEnqueued[]> EnqueueBulkAsync(string shareId, IReadOnlyList<Op> ops, bool refuseSetAside = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentNullException.ThrowIfNull(ops);
        return WithDbAsync(() => InTransaction(() =>
        {
            var producer = _producers.FindById(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}: call EnsureProducerAsync first.");
            var next = (ulong)producer["next_seq"].AsInt64;
            var now = NowMs();
            var results = new BulkEnqueued[ops.Count];
            for (var i = 0; i < ops.Count; i++)
            {
                var op = ops[i];
                OutboxRows.Identify(op, $"Op {i}", nameof(ops));

                results[i] = BulkOne(shareId, op, refuseSetAside, ref next, now);
            }

            producer["next_seq"] = (long)next;
            _producers.Update(producer);
            return results;
        }));
    }

    private BulkEnqueued BulkOne(string shareId, Op op, bool refuseSetAside, ref ulong next, long now)
    {
        if (_hasSetAside && IsSetAside(op.OpId))
        {
            return refuseSetAside
                ? throw new ArgumentException($"Op id {op.OpId} is set aside in this outbox: retry or drop it (ShareWriter.RetryPoisonOpAsync).", "ops")
                : new BulkEnqueued(0, BulkOutcome.SetAside);
        }

        if (FindOp(op.OpId) is { } existing)
        {
            return existing["share_id"].AsString == shareId
                ? new BulkEnqueued((ulong)existing["seq"].AsInt64, BulkOutcome.InOutbox)
                : throw new ArgumentException($"Op id {op.OpId} is already in this outbox for another share ({existing["share_id"].AsString}).");
        }

        op.Seq = next;
        InsertOp(shareId, op, now);
        return new BulkEnqueued(next++, BulkOutcome.New);
    }

    /// <summary>The op row of an op id (its share_id and seq), by the op_ids collection's primary key.</summary>
    private BsonDocument? FindOp(string opId) => _opIds.FindById(opId);

    /// <summary>Inserts an op row (its Seq already set): the op bytes, with their seq, and their checksum.</summary>
    private void InsertOp(string shareId, Op op, long now)
    {
        var bytes = op.ToByteArray();
        try
        {
            _ops.Insert(new BsonDocument
            {
                ["_id"] = RowKey(shareId, op.Seq),
                ["share_id"] = shareId,
                ["seq"] = (long)op.Seq,
                ["op_id"] = op.OpId,
                ["op"] = bytes,
                ["t"] = now,
                ["crc"] = (long)Crc32C.OfOpRow(op.Seq, bytes),
            });
            _opIds.Insert(new BsonDocument { ["_id"] = op.OpId, ["share_id"] = shareId, ["seq"] = (long)op.Seq });
        }
        catch (LiteException ex) when (ex.ErrorCode == LiteException.INDEX_DUPLICATE_KEY)
        {
            // The op id was looked up first, so the taken key is the seq.
            throw Damaged($"seq {op.Seq} of share {shareId} is taken although the producer row says it is next (the producer row is behind its ops).", ex);
        }
    }
}
