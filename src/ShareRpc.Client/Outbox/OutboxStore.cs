// OutboxStore: the type itself (fields, Open, the writer lock, DisposeAsync); each concern is in an OutboxStore.*.cs file.
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// The durable client outbox on SQLite (docs/design.md, "Client: the durable outbox"): ops are
/// durable before Enqueue returns (concurrent enqueues share one commit), sealed into batches
/// whose bytes are stored before the first send, and marked acked or rejected in one
/// transaction per ack. One writer process per file, enforced with an exclusive lock file.
/// </summary>
internal sealed partial class OutboxStore : IAsyncDisposable
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
