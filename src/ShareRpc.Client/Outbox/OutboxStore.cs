using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using ShareRpc.Protocol.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>One producer: this outbox writing to one share. Seqs up to SealedSeq are in batches; up to AckedSeq, acked or rejected.</summary>
public sealed record ProducerInfo(string ShareId, string ProducerId, string SturdyRef, ulong NextSeq, ulong AckedSeq, ulong SealedSeq = 0);

/// <summary>An op made durable: its id and its place in the producer's sequence.</summary>
public sealed record EnqueuedOp(string OpId, ulong Seq);

/// <summary>
/// A sealed batch: its membership and its exact request bytes were written before the first
/// send and never change, so every resend is byte-for-byte the same.
/// </summary>
public sealed record SealedBatch(string BatchId, string ShareId, ulong FirstSeq, ulong LastSeq, int OpCount, byte[] RequestBytes)
{
    public AppendOpsRequest Parse() => AppendOpsRequest.Parser.ParseFrom(RequestBytes);
}

/// <summary>What is waiting, per share.</summary>
public sealed record OutboxStatus(string ShareId, long PendingOps, long SealedBatches, long RejectedOps, DateTimeOffset? OldestPendingEnqueuedAt, string? StoppedReason);

/// <summary>The final outcome of one op, as the server acked it.</summary>
public sealed record OpOutcome(string OpId, OpStatus Status, ulong Cursor, ulong Version, RejectReason RejectReason, string Detail);

/// <summary>
/// The durable client outbox on SQLite (DESIGN.md "Client: the durable outbox"): ops are
/// durable before Enqueue returns (concurrent enqueues share one commit), sealed into batches
/// whose bytes are stored before the first send, and marked acked or rejected in one
/// transaction per ack. One writer process per file, enforced with an exclusive lock file.
/// </summary>
public sealed class OutboxStore : IAsyncDisposable
{
    private const int SchemaVersion = 1;

    // Batch states in SQL: 1 sealed (unacked), 2 acked.

    // AppendOpsRequest.ops is field 3, length-delimited: tag byte (3 << 3) | 2.
    private const byte OpsFieldTag = 0x1A;

    private readonly SqliteConnection _db;
    private readonly SemaphoreSlim _dbLock = new(1, 1);
    private FileStream? _lockFile;
    private readonly OutboxOptions _options;
    private readonly Channel<EnqueueRequest> _enqueues;
    private readonly Task _committer;

    private OutboxStore(string path, SqliteConnection db, OutboxOptions options)
    {
        Path = path;
        _db = db;
        _options = options;
        _enqueues = Channel.CreateBounded<EnqueueRequest>(new BoundedChannelOptions(options.MaxQueuedEnqueues) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _committer = Task.Run(CommitLoopAsync);
    }

    public string Path { get; }

    /// <summary>
    /// Opens (creating with mode 0600) the outbox file. Several processes may open it (creating
    /// shares is race-safe through SQLite's own locking); only one may send from it, see
    /// <see cref="AcquireWriterLock"/>.
    /// </summary>
    public static OutboxStore Open(string path, OutboxOptions? options = null)
    {
        options ??= new OutboxOptions();
        options.Validate();
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        if (!File.Exists(full))
        {
            try
            {
                // The file holds sturdy refs (secrets): owner-only from its first byte.
                using (new FileStream(full, OwnerOnly(FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite)))
                {
                }
            }
            catch (IOException) when (File.Exists(full))
            {
                // Another process created it first.
            }
        }

        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = full, Pooling = false, DefaultTimeout = 30 }.ToString());
        try
        {
            db.Open();
            Exec(db, "PRAGMA busy_timeout=10000;");
            Exec(db, "PRAGMA journal_mode=WAL;");
            Exec(db, options.FsyncEveryCommit ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
            Migrate(db);
            return new OutboxStore(full, db, options);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Takes the single-sender lock (an exclusive lock on FILE.lock, held until dispose): one
    /// process sends from an outbox file; a second gets <see cref="OutboxInUseException"/>.
    /// </summary>
    public void AcquireWriterLock()
    {
        lock (_enqueues)
        {
            if (_lockFile is not null)
            {
                return;
            }

            try
            {
                // FileShare.None is an exclusive advisory lock across processes on Linux.
                _lockFile = new FileStream(Path + ".lock", OwnerOnly(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException ex)
            {
                throw new OutboxInUseException(Path, ex);
            }
        }
    }

    /// <summary>
    /// The persisted intent to create a share: written (with its owner secret) before the remote
    /// call, so a crash or a lost response never orphans a share. The first caller's secret wins
    /// across tasks and processes (one SQLite transaction), so every racer creates the same share.
    /// </summary>
    public async Task<ShareIntent> GetOrAddShareIntentAsync(string server, string shareKey, string title, byte[] newSecret)
    {
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentException.ThrowIfNullOrEmpty(shareKey);
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var tx = _db.BeginTransaction();
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    INSERT INTO share_intents(share_key, server, owner_secret, title, state, created_at)
                    VALUES ($k, $s, $secret, $title, 0, $t) ON CONFLICT DO NOTHING
                    """;
                cmd.Parameters.AddWithValue("$k", shareKey);
                cmd.Parameters.AddWithValue("$s", server);
                cmd.Parameters.AddWithValue("$secret", newSecret);
                cmd.Parameters.AddWithValue("$title", title ?? "");
                cmd.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                cmd.ExecuteNonQuery();
            }

            var intent = ReadIntent(server, shareKey, tx)!;
            tx.Commit();
            return intent;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>Records the server's answer to a create (or clears it: null, for a recreate).</summary>
    public async Task SetShareIntentResultAsync(string server, string shareKey, string? shareId, string? sturdyRef, ShareIntentState state)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "UPDATE share_intents SET share_id = $id, sturdy_ref = $r, state = $st WHERE server = $s AND share_key = $k";
            cmd.Parameters.AddWithValue("$id", (object?)shareId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$r", (object?)sturdyRef ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$st", (int)state);
            cmd.Parameters.AddWithValue("$s", server);
            cmd.Parameters.AddWithValue("$k", shareKey);
            cmd.ExecuteNonQuery();
        }
        finally
        {
            _dbLock.Release();
        }
    }

    public async Task<ShareIntent?> GetShareIntentAsync(string server, string shareKey)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            return ReadIntent(server, shareKey, null);
        }
        finally
        {
            _dbLock.Release();
        }
    }

    private ShareIntent? ReadIntent(string server, string shareKey, SqliteTransaction? tx)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT owner_secret, title, share_id, sturdy_ref, state FROM share_intents WHERE server = $s AND share_key = $k";
        cmd.Parameters.AddWithValue("$s", server);
        cmd.Parameters.AddWithValue("$k", shareKey);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new ShareIntent(server, shareKey, (byte[])r.GetValue(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), (ShareIntentState)r.GetInt32(4))
            : null;
    }

    /// <summary>The producer for a share, made (with a new producer id) the first time.</summary>
    public async Task<ProducerInfo> EnsureProducerAsync(string shareId, string sturdyRef)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentException.ThrowIfNullOrEmpty(sturdyRef);
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
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
        }
        finally
        {
            _dbLock.Release();
        }
    }

    public async Task<IReadOnlyList<ProducerInfo>> GetProducersAsync()
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
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
        }
        finally
        {
            _dbLock.Release();
        }
    }

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

    /// <summary>Records why a share's sender stopped (e.g. PERMISSION_DENIED); null clears it.</summary>
    public async Task SetStoppedReasonAsync(string shareId, string? reason)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "UPDATE producers SET stopped_reason = $r WHERE share_id = $s";
            cmd.Parameters.AddWithValue("$r", (object?)reason ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.ExecuteNonQuery();
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// True when every op enqueued for the share is acked or rejected. O(1): batches are acked in
    /// seq order, so the producer's acked seq says it all (GetStatusAsync counts rows).
    /// </summary>
    public async Task<bool> IsDrainedAsync(string shareId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var p = ReadProducer(shareId);
            return p is null || p.AckedSeq + 1 >= p.NextSeq;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>True when the producer's acked seq has reached <paramref name="seq"/>.</summary>
    public async Task<bool> IsAckedAsync(string shareId, ulong seq)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            return ReadProducer(shareId) is { } p && p.AckedSeq >= seq;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    public async Task<OutboxStatus> GetStatusAsync(string shareId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            // O(1) but for the count of unacked batches (at most a window's worth).
            cmd.CommandText = """
                SELECT p.next_seq - 1 - p.acked_seq,
                  (SELECT COUNT(*) FROM batches WHERE share_id = $s AND state = 1),
                  p.rejected,
                  (SELECT enqueued_at FROM ops WHERE share_id = $s AND seq = p.acked_seq + 1),
                  p.stopped_reason
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
                r.IsDBNull(4) ? null : r.GetString(4));
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>The recorded outcome of an op, or null while it is unacked (or compacted away; rejections are kept).</summary>
    public async Task<OpOutcome?> GetOutcomeAsync(string opId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
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
            byte[]? responseBytes = null;
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
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// Deletes acked batches older than the retention and their op rows; returns the ops removed.
    /// Rejections are kept (the client must be able to report them).
    /// </summary>
    public async Task<int> CompactAsync(DateTimeOffset now)
    {
        var cutoff = (now - _options.AckedRetention).ToUnixTimeMilliseconds();
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var tx = _db.BeginTransaction();
            int n;
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    DELETE FROM ops WHERE EXISTS (
                      SELECT 1 FROM batches b WHERE b.share_id = ops.share_id AND b.state = 2 AND b.acked_at < $c
                        AND ops.seq BETWEEN b.first_seq AND b.last_seq)
                    """;
                cmd.Parameters.AddWithValue("$c", cutoff);
                n = cmd.ExecuteNonQuery();
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "DELETE FROM batches WHERE state = 2 AND acked_at < $c";
                cmd.Parameters.AddWithValue("$c", cutoff);
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
            return n;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _enqueues.Writer.TryComplete();
        await _committer.ConfigureAwait(false);
        await _dbLock.WaitAsync().ConfigureAwait(false);
        _db.Dispose();
        _lockFile?.Dispose();
    }

    private static FileStreamOptions OwnerOnly(FileMode mode, FileAccess access, FileShare share)
    {
        var o = new FileStreamOptions { Mode = mode, Access = access, Share = share };
        if (!OperatingSystem.IsWindows())
        {
            o.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return o;
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static void Migrate(SqliteConnection db)
    {
        // BEGIN IMMEDIATE first: two processes opening a new file at once must not both create it.
        using var tx = db.BeginTransaction(deferred: false);
        using var get = db.CreateCommand();
        get.Transaction = tx;
        get.CommandText = "PRAGMA user_version;";
        var version = Convert.ToInt32(get.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (version > SchemaVersion)
        {
            throw new InvalidOperationException($"Outbox schema {version} is newer than this build understands ({SchemaVersion}).");
        }

        if (version < 1)
        {
            using var cmd = db.CreateCommand();
            cmd.Transaction = tx;
            // Rowid tables throughout: op rows carry KiB payloads (SQLite advises against
            // WITHOUT ROWID for large rows).
            cmd.CommandText = """
                CREATE TABLE producers(
                  share_id TEXT PRIMARY KEY,
                  producer_id TEXT NOT NULL,
                  sturdy_ref TEXT NOT NULL,
                  next_seq INTEGER NOT NULL,
                  sealed_seq INTEGER NOT NULL,
                  acked_seq INTEGER NOT NULL,
                  rejected INTEGER NOT NULL,
                  stopped_reason TEXT);
                -- An op row is written once and never updated: its place (pending, sealed,
                -- acked) follows from the producer's sealed/acked seqs and the batch seq ranges.
                CREATE TABLE ops(
                  id INTEGER PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  seq INTEGER NOT NULL,
                  op_id TEXT NOT NULL UNIQUE,
                  op BLOB NOT NULL,
                  enqueued_at INTEGER NOT NULL,
                  UNIQUE(share_id, seq));
                CREATE TABLE batches(
                  batch_id TEXT PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  first_seq INTEGER NOT NULL,
                  last_seq INTEGER NOT NULL,
                  op_count INTEGER NOT NULL,
                  state INTEGER NOT NULL,
                  sealed_at INTEGER NOT NULL,
                  acked_at INTEGER,
                  response BLOB);
                CREATE INDEX batches_by_state ON batches(share_id, state, first_seq);
                CREATE TABLE rejections(
                  op_id TEXT PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  seq INTEGER NOT NULL,
                  reason INTEGER NOT NULL,
                  detail TEXT NOT NULL,
                  acked_at INTEGER NOT NULL);
                CREATE TABLE share_intents(
                  share_key TEXT NOT NULL,
                  server TEXT NOT NULL,
                  owner_secret BLOB NOT NULL,
                  title TEXT NOT NULL,
                  share_id TEXT,
                  sturdy_ref TEXT,
                  state INTEGER NOT NULL,
                  created_at INTEGER NOT NULL,
                  PRIMARY KEY(server, share_key));
                PRAGMA user_version = 1;
                """;
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
    }

    private static OpOutcome ToOutcome(OpAck ack) =>
        new(ack.OpId, ack.Status, ack.Cursor, ack.Version, ack.RejectReason, ack.Detail ?? "");

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

    private ProducerInfo? ReadProducer(string shareId)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT producer_id, sturdy_ref, next_seq, acked_seq, sealed_seq FROM producers WHERE share_id = $s";
        cmd.Parameters.AddWithValue("$s", shareId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new ProducerInfo(shareId, r.GetString(0), r.GetString(1), (ulong)r.GetInt64(2), (ulong)r.GetInt64(3), (ulong)r.GetInt64(4)) : null;
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

/// <summary>Where a share's creation stands.</summary>
public enum ShareIntentState
{
    Pending = 0,
    Created = 1,
    Aborted = 2,
}

/// <summary>A persisted create-share intent and, once known, its result.</summary>
public sealed record ShareIntent(string Server, string ShareKey, byte[] OwnerSecret, string Title, string? ShareId, string? SturdyRef, ShareIntentState State);

/// <summary>Another process holds this outbox file; one writer per file.</summary>
public sealed class OutboxInUseException : IOException
{
    public OutboxInUseException(string path, Exception inner)
        : base($"The outbox {path} is in use by another process (one writer per outbox file).", inner)
    {
        OutboxPath = path;
    }

    public string OutboxPath { get; }
}
