using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using ShareRpc.Protocol.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>One producer: this outbox writing to one share.</summary>
public sealed record ProducerInfo(string ShareId, string ProducerId, string SturdyRef, ulong NextSeq, ulong AckedSeq);

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

    // Op states.
    internal const int Pending = 0;
    internal const int Sealed = 1;
    internal const int Acked = 2;
    internal const int Rejected = 3;

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
                    INSERT INTO producers(share_id, producer_id, sturdy_ref, next_seq, acked_seq) VALUES ($s, $p, $r, 1, 0)
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
    /// Seals the oldest pending ops of a share into one batch (by MaxBatchOps and MaxBatchBytes),
    /// writing its membership and bytes before anything is sent. Null when nothing is pending.
    /// </summary>
    public async Task<SealedBatch?> SealNextBatchAsync(string shareId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var producer = ReadProducer(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
            var ops = new List<(ulong Seq, byte[] Bytes)>();
            long bytes = 0;
            using (var cmd = _db.CreateCommand())
            {
                cmd.CommandText = "SELECT seq, op FROM ops WHERE share_id = $s AND state = 0 ORDER BY seq LIMIT $n";
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$n", _options.MaxBatchOps);
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    var b = (byte[])r.GetValue(1);
                    if (ops.Count > 0 && bytes + b.Length > _options.MaxBatchBytes)
                    {
                        break;
                    }

                    ops.Add(((ulong)r.GetInt64(0), b));
                    bytes += b.Length;
                }
            }

            if (ops.Count == 0)
            {
                return null;
            }

            var request = new AppendOpsRequest { BatchId = Guid.CreateVersion7().ToString(), ProducerId = producer.ProducerId };
            foreach (var (_, b) in ops)
            {
                request.Ops.Add(Op.Parser.ParseFrom(b));
            }

            var requestBytes = request.ToByteArray();
            var batch = new SealedBatch(request.BatchId, shareId, ops[0].Seq, ops[^1].Seq, ops.Count, requestBytes);
            using var tx = _db.BeginTransaction();
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    INSERT INTO batches(batch_id, share_id, first_seq, last_seq, op_count, request, state, sends, sealed_at)
                    VALUES ($b, $s, $f, $l, $c, $r, 1, 0, $t)
                    """;
                cmd.Parameters.AddWithValue("$b", batch.BatchId);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$f", (long)batch.FirstSeq);
                cmd.Parameters.AddWithValue("$l", (long)batch.LastSeq);
                cmd.Parameters.AddWithValue("$c", batch.OpCount);
                cmd.Parameters.AddWithValue("$r", requestBytes);
                cmd.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                cmd.ExecuteNonQuery();
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE ops SET state = 1, batch_id = $b WHERE share_id = $s AND state = 0 AND seq BETWEEN $f AND $l";
                cmd.Parameters.AddWithValue("$b", batch.BatchId);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$f", (long)batch.FirstSeq);
                cmd.Parameters.AddWithValue("$l", (long)batch.LastSeq);
                var n = cmd.ExecuteNonQuery();
                if (n != batch.OpCount)
                {
                    throw new InvalidOperationException($"Sealing {batch.BatchId}: expected {batch.OpCount} ops, marked {n}.");
                }
            }

            tx.Commit();
            return batch;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>Every sealed, unacked batch of a share, oldest first: what a reconnect resends.</summary>
    public async Task<IReadOnlyList<SealedBatch>> GetUnackedBatchesAsync(string shareId, ulong fromSeq = 0, int limit = int.MaxValue)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = """
                SELECT batch_id, first_seq, last_seq, op_count, request FROM batches
                WHERE share_id = $s AND state = 1 AND last_seq >= $f ORDER BY first_seq LIMIT $n
                """;
            cmd.Parameters.AddWithValue("$s", shareId);
            cmd.Parameters.AddWithValue("$f", (long)fromSeq);
            cmd.Parameters.AddWithValue("$n", limit);
            var list = new List<SealedBatch>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                list.Add(new SealedBatch(r.GetString(0), shareId, (ulong)r.GetInt64(1), (ulong)r.GetInt64(2), r.GetInt32(3), (byte[])r.GetValue(4)));
            }

            return list;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>Counts a send of a batch (for inspection).</summary>
    public async Task RecordSendAsync(string batchId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "UPDATE batches SET sends = sends + 1 WHERE batch_id = $b";
            cmd.Parameters.AddWithValue("$b", batchId);
            cmd.ExecuteNonQuery();
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>
    /// Records an accepted batch's acks in one transaction: each op acked (APPLIED or DUPLICATE,
    /// with its cursor) or rejected with its reason. Returns the outcomes. An ack for a batch
    /// that is not sealed here (already acked) changes nothing and returns none.
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
            using var tx = _db.BeginTransaction();
            long lastSeq;
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE batches SET state = 2, acked_at = $t WHERE batch_id = $b AND share_id = $s AND state = 1 RETURNING last_seq";
                cmd.Parameters.AddWithValue("$b", response.BatchId);
                cmd.Parameters.AddWithValue("$s", shareId);
                cmd.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                var v = cmd.ExecuteScalar();
                if (v is null)
                {
                    return Array.Empty<OpOutcome>();
                }

                lastSeq = (long)v;
            }

            var outcomes = new List<OpOutcome>(response.Acks.Count);
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    UPDATE ops SET state = $st, status = $status, cursor = $c, version = $v, reject_reason = $rr, detail = $d, acked_at = $t
                    WHERE op_id = $id AND batch_id = $b
                    """;
                var pSt = cmd.Parameters.Add("$st", SqliteType.Integer);
                var pStatus = cmd.Parameters.Add("$status", SqliteType.Integer);
                var pC = cmd.Parameters.Add("$c", SqliteType.Integer);
                var pV = cmd.Parameters.Add("$v", SqliteType.Integer);
                var pRr = cmd.Parameters.Add("$rr", SqliteType.Integer);
                var pD = cmd.Parameters.Add("$d", SqliteType.Text);
                var pId = cmd.Parameters.Add("$id", SqliteType.Text);
                cmd.Parameters.AddWithValue("$b", response.BatchId);
                cmd.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                foreach (var ack in response.Acks)
                {
                    pSt.Value = ack.Status == OpStatus.Rejected ? Rejected : Acked;
                    pStatus.Value = (int)ack.Status;
                    pC.Value = (long)ack.Cursor;
                    pV.Value = (long)ack.Version;
                    pRr.Value = (int)ack.RejectReason;
                    pD.Value = ack.Detail ?? "";
                    pId.Value = ack.OpId;
                    cmd.ExecuteNonQuery();
                    outcomes.Add(new OpOutcome(ack.OpId, ack.Status, ack.Cursor, ack.Version, ack.RejectReason, ack.Detail ?? ""));
                }
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE producers SET acked_seq = MAX(acked_seq, $l) WHERE share_id = $s";
                cmd.Parameters.AddWithValue("$l", lastSeq);
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
            cmd.CommandText = """
                SELECT
                  (SELECT COUNT(*) FROM ops WHERE share_id = $s AND state IN (0, 1)),
                  (SELECT COUNT(*) FROM batches WHERE share_id = $s AND state = 1),
                  (SELECT COUNT(*) FROM ops WHERE share_id = $s AND state = 3),
                  (SELECT MIN(enqueued_at) FROM ops WHERE share_id = $s AND state IN (0, 1)),
                  (SELECT stopped_reason FROM producers WHERE share_id = $s)
                """;
            cmd.Parameters.AddWithValue("$s", shareId);
            using var r = cmd.ExecuteReader();
            r.Read();
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

    /// <summary>The recorded outcome of an op, or null while it is unacked (or compacted).</summary>
    public async Task<OpOutcome?> GetOutcomeAsync(string opId)
    {
        await _dbLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT status, cursor, version, reject_reason, detail FROM ops WHERE op_id = $id AND state IN (2, 3)";
            cmd.Parameters.AddWithValue("$id", opId);
            using var r = cmd.ExecuteReader();
            return r.Read()
                ? new OpOutcome(opId, (OpStatus)r.GetInt32(0), (ulong)r.GetInt64(1), (ulong)r.GetInt64(2), (RejectReason)r.GetInt32(3), r.GetString(4))
                : null;
        }
        finally
        {
            _dbLock.Release();
        }
    }

    /// <summary>Deletes acked ops (and their batches) older than the retention; rejected ops are kept.</summary>
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
                cmd.CommandText = "DELETE FROM ops WHERE state = 2 AND acked_at < $c";
                cmd.Parameters.AddWithValue("$c", cutoff);
                n = cmd.ExecuteNonQuery();
            }

            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "DELETE FROM batches WHERE state = 2 AND acked_at < $c AND NOT EXISTS (SELECT 1 FROM ops WHERE ops.batch_id = batches.batch_id)";
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
                  acked_seq INTEGER NOT NULL,
                  stopped_reason TEXT);
                CREATE TABLE ops(
                  id INTEGER PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  seq INTEGER NOT NULL,
                  op_id TEXT NOT NULL UNIQUE,
                  op BLOB NOT NULL,
                  state INTEGER NOT NULL,
                  batch_id TEXT,
                  enqueued_at INTEGER NOT NULL,
                  acked_at INTEGER,
                  status INTEGER,
                  cursor INTEGER,
                  version INTEGER,
                  reject_reason INTEGER,
                  detail TEXT,
                  UNIQUE(share_id, seq));
                CREATE INDEX ops_by_state ON ops(share_id, state, seq);
                CREATE INDEX ops_by_batch ON ops(batch_id);
                CREATE TABLE batches(
                  batch_id TEXT PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  first_seq INTEGER NOT NULL,
                  last_seq INTEGER NOT NULL,
                  op_count INTEGER NOT NULL,
                  request BLOB NOT NULL,
                  state INTEGER NOT NULL,
                  sends INTEGER NOT NULL,
                  sealed_at INTEGER NOT NULL,
                  acked_at INTEGER);
                CREATE INDEX batches_by_state ON batches(share_id, state, first_seq);
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

    private ProducerInfo? ReadProducer(string shareId)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT producer_id, sturdy_ref, next_seq, acked_seq FROM producers WHERE share_id = $s";
        cmd.Parameters.AddWithValue("$s", shareId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new ProducerInfo(shareId, r.GetString(0), r.GetString(1), (ulong)r.GetInt64(2), (ulong)r.GetInt64(3)) : null;
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
        insert.CommandText = "INSERT INTO ops(share_id, seq, op_id, op, state, enqueued_at) VALUES ($s, $q, $id, $op, 0, $t)";
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
