// OutboxStore: the type itself (fields, Open, the writer lock, DisposeAsync); each concern is in an OutboxStore.*.cs file.
using Microsoft.Data.Sqlite;
using ShareRpc.Storage;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// The durable client outbox on SQLite (docs/design.md, "Client: the durable outbox"): ops are
/// durable before Enqueue returns (concurrent enqueues share one commit), sealed into batches
/// whose bytes are stored before the first send, and marked acked or rejected in one
/// transaction per ack. One writer process per file, enforced with an exclusive lock file.
/// </summary>
internal sealed partial class OutboxStore : IOutboxStore
{
    // Batch states in SQL: 1 sealed (unacked), 2 acked.

    // AppendOpsRequest.ops is field 3, length-delimited: tag byte (3 << 3) | 2.
    private const byte OpsFieldTag = 0x1A;

    private readonly SqliteConnection _db;
    private readonly OutboxGate _gate;
    private FileStream? _lockFile;
    private readonly OutboxOptions _options;
    private readonly TimeProvider _time;
    private readonly GroupCommitQueue _enqueues;
    private readonly WalCheckpointer _checkpointer;

    private OutboxStore(string path, SqliteConnection db, OutboxOptions options, TimeProvider time)
    {
        Path = path;
        _db = db;
        _checkpointer = WalCheckpointer.Start(db, ConnectionString(path), options.FsyncEveryCommit, time);
        _options = options;
        _time = time;
        _hasSetAside = CountSetAside() > 0;
        // After each piece of work: a checkpoint is due (a no-op one when nothing was written).
        _gate = new OutboxGate(this, Damaged, ex => ex is SqliteException s && IsDamage(s) ? Damaged("SQLite cannot read it: " + s.Message, s) : null, _checkpointer.Committed);
        _enqueues = new GroupCommitQueue(options, _gate.Lock, CommitGroup, DescribeCommitError);
    }

    public string Path { get; }

    public OutboxEngine Engine => OutboxEngine.Sqlite;

    /// <summary>The background checkpointer of the outbox's log (tests read its counters).</summary>
    internal WalCheckpointer Checkpointer => _checkpointer;

    /// <summary>The connection, for tests that measure the work a statement does (SQLite's progress handler).</summary>
    internal SqliteConnection Connection => _db;

    /// <summary>
    /// Opens the outbox file; a missing file is a fresh outbox, created whole (mode 0600) before it
    /// appears under its name. An empty, truncated or otherwise damaged file, or one whose
    /// write-ahead log went missing, is an <see cref="OutboxCorruptException"/> naming it (docs/client.md,
    /// "Integrity"). Several processes may open it (creating shares is race-safe through SQLite's own
    /// locking); only one may send from it, see <see cref="AcquireWriterLock"/>.
    /// </summary>
    public static OutboxStore Open(string path, OutboxOptions? options = null, TimeProvider? time = null)
    {
        options ??= new OutboxOptions();
        options.Validate();
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        if (!File.Exists(full))
        {
            CreateWhole(full);
        }

        CheckBeforeOpen(full);
        var db = new SqliteConnection(ConnectionString(full));
        try
        {
            db.Open();
            Exec(db, "PRAGMA busy_timeout=10000;");
            Exec(db, "PRAGMA journal_mode=WAL;");
            Exec(db, options.FsyncEveryCommit ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
            Migrate(db);
            MarkInUse(db);
            return new OutboxStore(full, db, options, time ?? TimeProvider.System);
        }
        catch (SqliteException ex) when (IsDamage(ex))
        {
            db.Dispose();
            throw new OutboxCorruptException(full, "SQLite cannot read it: " + ex.Message, ex);
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

    public async ValueTask DisposeAsync()
    {
        await _enqueues.CompleteAsync().ConfigureAwait(false);
        await _gate.CloseAsync(async () =>
        {
            await _checkpointer.DisposeAsync().ConfigureAwait(false);
            ClearInUseMark();
            _db.Dispose();
            _lockFile?.Dispose();
        }).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="work"/> on the connection under the store's lock (<see cref="OutboxGate"/>).</summary>
    private Task<T> WithDbAsync<T>(Func<T> work) => _gate.RunAsync(work);

    private Task WithDbAsync(Action work) => _gate.RunAsync(work);

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>
    /// For the records that follow an op's commit — a seal and an ack — and that can be rebuilt
    /// if lost: until disposed, commits on this connection are synchronous=NORMAL (written to the
    /// WAL, which survives a process crash, but not fsynced). The next op commit's fsync makes
    /// them durable too: the WAL is one file, appended in commit order, and recovery keeps a
    /// prefix of its commits (docs/client.md, "What each commit costs"). Saves an fsync per batch
    /// on each side of the send, on the path every op takes.
    /// </summary>
    private RelaxedSync RelaxSync() => new(this);

    private readonly struct RelaxedSync : IDisposable
    {
        private readonly OutboxStore? _store;

        public RelaxedSync(OutboxStore store)
        {
            if (store._options.FsyncEveryCommit)
            {
                _store = store;
                Exec(store._db, "PRAGMA synchronous=NORMAL;");
            }
        }

        public void Dispose()
        {
            if (_store is not null)
            {
                Exec(_store._db, "PRAGMA synchronous=FULL;");
            }
        }
    }

    private static string ConnectionString(string path) =>
        new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, DefaultTimeout = 30 }.ToString();

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
}

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

/// <summary>
/// The outbox file is damaged: empty, truncated, not a database, its write-ahead log missing after
/// an unclean close, an op row missing or failing its checksum. The message names the file and
/// what is wrong; nothing was sent from the damaged part and the file was not changed to hide it.
/// </summary>
public sealed class OutboxCorruptException : IOException
{
    public OutboxCorruptException(string path, string problem, Exception? inner = null)
        : base($"The outbox {path} is damaged: {problem}", inner)
    {
        OutboxPath = path;
        Problem = problem;
    }

    public string OutboxPath { get; }

    /// <summary>What is wrong, without the file name.</summary>
    public string Problem { get; }
}
