using System.Text.Json;
using Microsoft.Data.Sqlite;
using ShareRpc.Server.Capabilities;
using ShareRpc.Storage;

namespace ShareRpc.Server.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file per data directory, WAL, synchronous=FULL, one writer
/// connection (write transactions are serialized by a lock and BEGIN IMMEDIATE), pooled
/// read connections (each reader is one deferred transaction, i.e. one WAL snapshot).
/// </summary>
internal sealed partial class SqliteShareStore : IShareStore
{
    public const string FileName = "sharerpc.db";

    private readonly string _connectionString;
    private readonly SqliteConnection _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Dictionary<string, SqliteCommand> _writerCommands = new(StringComparer.Ordinal);
    private readonly WalCheckpointer _checkpointer;
    private bool _disposed;

    private SqliteShareStore(string path, bool fsyncEveryCommit)
    {
        Path = path;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        _writer = new SqliteConnection(_connectionString);
        _writer.Open();
        Exec(_writer, "PRAGMA journal_mode = WAL;");
        Exec(_writer, fsyncEveryCommit ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = NORMAL;");
        Exec(_writer, "PRAGMA busy_timeout = 30000;");
        SqliteSchema.Migrate(_writer);
        _checkpointer = WalCheckpointer.Start(_writer, _connectionString, fsyncEveryCommit);
    }

    /// <summary>The background checkpointer of the writer's log (tests read its counters).</summary>
    internal WalCheckpointer Checkpointer => _checkpointer;

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <summary>Opens (creating and migrating if needed) the store in <paramref name="dataDirectory"/>.</summary>
    public static SqliteShareStore Open(string dataDirectory) => Open(dataDirectory, fsyncEveryCommit: true);

    /// <summary>
    /// Opens the store; <paramref name="fsyncEveryCommit"/> false uses synchronous=NORMAL (WAL): commits
    /// survive a process crash, not a power loss.
    /// </summary>
    public static SqliteShareStore Open(string dataDirectory, bool fsyncEveryCommit)
    {
        var path = System.IO.Path.Combine(dataDirectory, FileName);
        OwnerOnly(dataDirectory, path);
        return new SqliteShareStore(path, fsyncEveryCommit);
    }

    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Share contents are readable by the server's user only: the data directory is created 0700 and
    /// the database file 0600 before SQLite opens it (SQLite gives the -wal and -shm files the
    /// database file's mode); files an older server left group- or world-readable are narrowed to 0600.
    /// </summary>
    private static void OwnerOnly(string dataDirectory, string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dataDirectory);
            return;
        }
        if (!Directory.Exists(dataDirectory)) Directory.CreateDirectory(dataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            using var created = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerReadWrite });
        }
        catch (IOException) when (File.Exists(path))
        {
            // Already there: narrowed below.
        }
        foreach (var file in new[] { path, path + "-wal", path + "-shm", path + "-journal" })
        {
            if (File.Exists(file) && (File.GetUnixFileMode(file) & ~OwnerReadWrite) != 0)
                File.SetUnixFileMode(file, File.GetUnixFileMode(file) & OwnerReadWrite);
        }
    }

    /// <summary>Reads a PRAGMA on the writer connection (tests).</summary>
    internal long WriterPragma(string name)
    {
        using var cmd = _writer.CreateCommand();
        cmd.CommandText = $"PRAGMA {name};";
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    internal static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public async Task<IShareTransaction> BeginWriteAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var tx = _writer.BeginTransaction(deferred: false); // BEGIN IMMEDIATE
            return new WriteTransaction(this, tx);
        }
        catch
        {
            _writeLock.Release();
            throw;
        }
    }

    public Task<IShareReader> BeginReadAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = new SqliteConnection(_connectionString);
        try
        {
            c.Open();
            Exec(c, "PRAGMA busy_timeout = 30000;");
            var tx = c.BeginTransaction(deferred: true);
            return Task.FromResult<IShareReader>(new Reader(c, tx, ownsConnection: true));
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            _disposed = true;
            await _checkpointer.DisposeAsync().ConfigureAwait(false);
            foreach (var cmd in _writerCommands.Values) cmd.Dispose();
            _writerCommands.Clear();
            _writer.Dispose();
            SqliteConnection.ClearPool(new SqliteConnection(_connectionString));
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private SqliteCommand WriterCommand(string sql, SqliteTransaction tx)
    {
        if (!_writerCommands.TryGetValue(sql, out var cmd))
        {
            cmd = _writer.CreateCommand();
            cmd.CommandText = sql;
            _writerCommands[sql] = cmd;
        }
        cmd.Transaction = tx;
        return cmd;
    }

    // ------------------------------------------------------------------ writer

    private sealed class WriteTransaction(SqliteShareStore store, SqliteTransaction tx) : Reader(store._writer, tx, ownsConnection: false), IShareTransaction
    {
        private bool _released;

        protected override SqliteCommand Command(string sql) => store.WriterCommand(sql, Tx);
        protected override void Release(SqliteCommand cmd) { }

        private int Exec(string sql, params (string Name, object? Value)[] args) => Run(sql, c => c.ExecuteNonQuery(), args);

        public Task<ShareRecord?> LockShareAsync(string shareId, CancellationToken ct = default) => GetShareAsync(shareId, ct);

        public Task SavepointAsync(string name, CancellationToken ct = default) { Tx.Save(name); return Task.CompletedTask; }
        public Task ReleaseSavepointAsync(string name, CancellationToken ct = default) { Tx.Release(name); return Task.CompletedTask; }
        public Task RollbackToSavepointAsync(string name, CancellationToken ct = default) { Tx.Rollback(name); return Task.CompletedTask; }

        public Task CommitAsync(CancellationToken ct = default)
        {
            Tx.Commit();
            store._checkpointer.Committed();
            return Task.CompletedTask;
        }

        public Task<long> InsertShareAsync(string shareId, string shareKey, string title, IReadOnlyDictionary<string, string> labels,
            DateTimeOffset createdAt, CancellationToken ct = default) =>
            Task.FromResult(Run(
                "INSERT INTO shares(share_id, share_key, title, labels, epoch, cursor, created_at) VALUES ($id, $k, $t, $l, 1, 0, $at) RETURNING id",
                c => (long)c.ExecuteScalar()!,
                ("$id", shareId), ("$k", shareKey), ("$t", title), ("$l", JsonSerializer.Serialize(labels)), ("$at", Ms(createdAt))));

        public Task UpdateShareHeadAsync(long shareRowId, ulong epoch, ulong cursor, CancellationToken ct = default)
        {
            Exec("UPDATE shares SET epoch = $e, cursor = $c WHERE id = $s", ("$e", L(epoch)), ("$c", L(cursor)), ("$s", shareRowId));
            return Task.CompletedTask;
        }

        public Task<long> InsertCapabilityAsync(string capabilityId, long shareRowId, long? parentRowId, byte[] secretHash, Rights rights,
            DateTimeOffset? expiresAt, string note, DateTimeOffset createdAt, CancellationToken ct = default) =>
            Task.FromResult(Run(
                "INSERT INTO capabilities(capability_id, share, parent, secret_hash, rights, expires_at, revoked_at, note, created_at) " +
                "VALUES ($id, $s, $p, $h, $r, $x, NULL, $n, $at) RETURNING id",
                c => (long)c.ExecuteScalar()!,
                ("$id", capabilityId), ("$s", shareRowId), ("$p", parentRowId), ("$h", secretHash), ("$r", (int)rights),
                ("$x", expiresAt is { } x ? Ms(x) : null), ("$n", note), ("$at", Ms(createdAt))));

        public Task MarkRevokedAsync(IReadOnlyList<long> capabilityRowIds, DateTimeOffset revokedAt, CancellationToken ct = default)
        {
            foreach (var id in capabilityRowIds)
                Exec("UPDATE capabilities SET revoked_at = $at WHERE id = $id AND revoked_at IS NULL", ("$at", Ms(revokedAt)), ("$id", id));
            return Task.CompletedTask;
        }

        public Task<OpOutcome?> FindOpAsync(long shareRowId, string opId, CancellationToken ct = default) =>
            Task.FromResult(Run(
                "SELECT 1, cursor, version, 0, '' FROM log WHERE share = $s AND op_id = $o " +
                "UNION ALL SELECT 0, 0, 0, reason, detail FROM rejections WHERE share = $s AND op_id = $o LIMIT 1", c =>
                {
                    using var r = c.ExecuteReader();
                    return r.Read() ? new OpOutcome(r.GetInt64(0) == 1, U(r.GetInt64(1)), U(r.GetInt64(2)), r.GetInt32(3), r.GetString(4)) : null;
                }, ("$s", shareRowId), ("$o", opId)));

        private const int MaxIdsPerQuery = 256;

        public Task<Dictionary<string, OpOutcome>> FindOpsAsync(long shareRowId, IReadOnlyCollection<string> opIds, CancellationToken ct = default)
        {
            var result = new Dictionary<string, OpOutcome>(StringComparer.Ordinal);
            var ids = opIds.Distinct(StringComparer.Ordinal).ToArray();
            for (var start = 0; start < ids.Length; start += MaxIdsPerQuery)
            {
                var count = Math.Min(MaxIdsPerQuery, ids.Length - start);
                // Pad to a power of two so only a handful of statements are ever prepared.
                var size = 1;
                while (size < count) size <<= 1;
                var names = Enumerable.Range(0, size).Select(i => "$o" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                var list = string.Join(", ", names);
                var sql = $"SELECT op_id, 1, cursor, version, 0, '' FROM log WHERE share = $s AND op_id IN ({list}) " +
                          $"UNION ALL SELECT op_id, 0, 0, 0, reason, detail FROM rejections WHERE share = $s AND op_id IN ({list})";
                var args = new (string, object?)[size + 1];
                args[0] = ("$s", shareRowId);
                for (var i = 0; i < size; i++) args[i + 1] = (names[i], ids[start + Math.Min(i, count - 1)]);
                Run(sql, c =>
                {
                    using var r = c.ExecuteReader();
                    while (r.Read())
                        result[r.GetString(0)] = new OpOutcome(r.GetInt64(1) == 1, U(r.GetInt64(2)), U(r.GetInt64(3)), r.GetInt32(4), r.GetString(5));
                    return 0;
                }, args);
            }
            return Task.FromResult(result);
        }

        public Task<ProducerRecord?> GetProducerAsync(long shareRowId, string producerId, CancellationToken ct = default) =>
            Task.FromResult(Run("SELECT last_seq, capability FROM producers WHERE share = $s AND producer_id = $p", c =>
            {
                using var r = c.ExecuteReader();
                return r.Read() ? new ProducerRecord(U(r.GetInt64(0)), r.IsDBNull(1) ? null : r.GetInt64(1)) : null;
            }, ("$s", shareRowId), ("$p", producerId)));

        public Task SetProducerAsync(long shareRowId, string producerId, ulong lastSeq, long capabilityRowId, CancellationToken ct = default)
        {
            Exec("INSERT INTO producers(share, producer_id, last_seq, capability) VALUES ($s, $p, $q, $c) " +
                 "ON CONFLICT(share, producer_id) DO UPDATE SET last_seq = excluded.last_seq, capability = excluded.capability",
                ("$s", shareRowId), ("$p", producerId), ("$q", L(lastSeq)), ("$c", capabilityRowId));
            return Task.CompletedTask;
        }

        public Task<DocumentHead?> GetDocumentHeadAsync(long shareRowId, string collection, string key, CancellationToken ct = default) =>
            Task.FromResult(Run("SELECT version, cursor, log_id, deleted FROM documents WHERE share = $s AND collection = $c AND key = $k", c =>
            {
                using var r = c.ExecuteReader();
                return r.Read() ? new DocumentHead(U(r.GetInt64(0)), U(r.GetInt64(1)), r.GetInt64(2), r.GetInt64(3) != 0) : null;
            }, ("$s", shareRowId), ("$c", collection), ("$k", key)));

        public Task<long> AppendLogAsync(long shareRowId, LogEntry e, CancellationToken ct = default) =>
            Task.FromResult(Run(
                "INSERT INTO log(share, cursor, op_id, producer_id, seq, kind, collection, key, value, content_type, expected_version, depends_on, version, committed_at) " +
                "VALUES ($s, $c, $o, $p, $q, $k, $coll, $key, $v, $ct, $ev, $d, $ver, $at) RETURNING id",
                c => (long)c.ExecuteScalar()!,
                ("$s", shareRowId), ("$c", L(e.Cursor)), ("$o", e.OpId), ("$p", e.ProducerId), ("$q", L(e.Seq)), ("$k", (int)e.Kind),
                ("$coll", e.Collection), ("$key", e.Key), ("$v", e.Value), ("$ct", e.ContentType),
                ("$ev", e.ExpectedVersion is { } ev ? L(ev) : null), ("$d", e.DependsOn.Count == 0 ? null : string.Join('\n', e.DependsOn)),
                ("$ver", L(e.Version)), ("$at", Ms(e.CommittedAt))));

        public Task UpsertDocumentAsync(long shareRowId, string collection, string key, ulong version, ulong cursor, long logRowId, bool deleted, CancellationToken ct = default)
        {
            Exec("INSERT INTO documents(share, collection, key, version, cursor, log_id, deleted) VALUES ($s, $c, $k, $v, $cur, $l, $d) " +
                 "ON CONFLICT(share, collection, key) DO UPDATE SET version = excluded.version, cursor = excluded.cursor, log_id = excluded.log_id, deleted = excluded.deleted",
                ("$s", shareRowId), ("$c", collection), ("$k", key), ("$v", L(version)), ("$cur", L(cursor)), ("$l", logRowId), ("$d", deleted ? 1 : 0));
            return Task.CompletedTask;
        }

        public Task InsertRejectionAsync(long shareRowId, string opId, int rejectReason, string detail, CancellationToken ct = default)
        {
            Exec("INSERT INTO rejections(share, op_id, reason, detail) VALUES ($s, $o, $r, $d)",
                ("$s", shareRowId), ("$o", opId), ("$r", rejectReason), ("$d", detail));
            return Task.CompletedTask;
        }

        public override async ValueTask DisposeAsync()
        {
            if (_released) return;
            _released = true;
            try
            {
                await base.DisposeAsync().ConfigureAwait(false); // rolls back when not committed
            }
            catch (SqliteException)
            {
                // A failed COMMIT (disk full, I/O error) may leave the transaction open or already
                // rolled back; make sure the writer connection is usable for the next transaction.
                try { SqliteShareStore.Exec(store._writer, "ROLLBACK;"); } catch (SqliteException) { }
            }
            finally
            {
                store._writeLock.Release();
            }
        }
    }
}
