// OutboxStore: making ops durable, with concurrent enqueues sharing one commit (group commit).
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>An op made durable: its id and its place in the producer's sequence.</summary>
internal sealed record EnqueuedOp(string OpId, ulong Seq);

internal sealed partial class OutboxStore
{
    /// <summary>
    /// Makes the op durable and returns its id and seq. The op id is made here (UUIDv7) unless
    /// the caller set one. Concurrent calls share one commit (and one fsync).
    /// </summary>
    public async Task<EnqueuedOp> EnqueueAsync(string shareId, Op op)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentNullException.ThrowIfNull(op);
        if (op.KindCase == Op.KindOneofCase.None)
        {
            throw new ArgumentException("The op has no kind (put, delete or append).", nameof(op));
        }

        var request = new EnqueueRequest(shareId, op.Clone());
        if (string.IsNullOrEmpty(request.Op.OpId))
        {
            request.Op.OpId = Guid.CreateVersion7().ToString();
        }

        try
        {
            await _enqueues.Writer.WriteAsync(request).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(OutboxStore));
        }

        return await request.Done.Task.ConfigureAwait(false);
    }

    /// <summary>Group commit: every enqueue waiting when a commit starts rides in it.</summary>
    private async Task CommitLoopAsync()
    {
        var reader = _enqueues.Reader;
        var group = new List<EnqueueRequest>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < _options.MaxOpsPerCommit && reader.TryRead(out var r))
            {
                group.Add(r);
            }

            await _dbLock.WaitAsync().ConfigureAwait(false);
            try
            {
                CommitGroup(group);
            }
            catch (Exception ex)
            {
                // Nothing in the group is durable: every caller learns it (disk full, etc.).
                foreach (var r in group)
                {
                    r.Done.TrySetException(ex);
                }
            }
            finally
            {
                _dbLock.Release();
            }
        }
    }

    private void CommitGroup(List<EnqueueRequest> group)
    {
        var results = new List<(EnqueueRequest Request, EnqueuedOp Result)>(group.Count);
        using var tx = _db.BeginTransaction();
        var nextSeq = new Dictionary<string, ulong>(StringComparer.Ordinal);
        using var insert = _db.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = "INSERT INTO ops(share_id, seq, op_id, op, enqueued_at) VALUES ($s, $q, $id, $op, $t)";
        var pS = insert.Parameters.Add("$s", SqliteType.Text);
        var pQ = insert.Parameters.Add("$q", SqliteType.Integer);
        var pId = insert.Parameters.Add("$id", SqliteType.Text);
        var pOp = insert.Parameters.Add("$op", SqliteType.Blob);
        insert.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        foreach (var r in group)
        {
            if (!nextSeq.TryGetValue(r.ShareId, out var seq))
            {
                using var get = _db.CreateCommand();
                get.Transaction = tx;
                get.CommandText = "SELECT next_seq FROM producers WHERE share_id = $s";
                get.Parameters.AddWithValue("$s", r.ShareId);
                var v = get.ExecuteScalar();
                if (v is null)
                {
                    r.Done.TrySetException(new InvalidOperationException($"No producer for share {r.ShareId}: call EnsureProducerAsync first."));
                    continue;
                }

                seq = (ulong)(long)v;
            }

            r.Op.Seq = seq;
            pS.Value = r.ShareId;
            pQ.Value = (long)seq;
            pId.Value = r.Op.OpId;
            pOp.Value = r.Op.ToByteArray();
            try
            {
                insert.ExecuteNonQuery();
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
            {
                // UNIQUE(op_id): the caller reused an op id; refuse it alone.
                r.Done.TrySetException(new ArgumentException($"Op id {r.Op.OpId} is already in this outbox.", ex));
                continue;
            }

            nextSeq[r.ShareId] = seq + 1;
            results.Add((r, new EnqueuedOp(r.Op.OpId, seq)));
        }

        using (var update = _db.CreateCommand())
        {
            update.Transaction = tx;
            update.CommandText = "UPDATE producers SET next_seq = $n WHERE share_id = $s";
            var pN = update.Parameters.Add("$n", SqliteType.Integer);
            var pShare = update.Parameters.Add("$s", SqliteType.Text);
            foreach (var (share, next) in nextSeq)
            {
                pN.Value = (long)next;
                pShare.Value = share;
                update.ExecuteNonQuery();
            }
        }

        tx.Commit();
        foreach (var (request, result) in results)
        {
            request.Done.TrySetResult(result);
        }
    }

    private sealed record EnqueueRequest(string ShareId, Op Op)
    {
        public TaskCompletionSource<EnqueuedOp> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
