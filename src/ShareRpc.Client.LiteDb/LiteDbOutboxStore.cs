// LiteDbOutboxStore: the type itself (fields, Open, the process lock, DisposeAsync); each concern is in a LiteDbOutboxStore.*.cs file.
using System.Diagnostics;
using LiteDB;
using LiteDB.Engine;
using ShareRpc.Client.Outbox;

namespace ShareRpc.Client.LiteDb;

/// <summary>
/// The durable client outbox on LiteDB 5.0.21 (docs/design.md, "Client: the durable outbox"; docs/client.md,
/// "Outbox stores"), with the SQLite store's semantics: the same op bytes and CRC-32C per op, batch
/// membership fixed at seal, set-aside holes, integrity errors as <see cref="OutboxCorruptException"/>.
/// Durable commits come from <see cref="FsyncLogStream"/>. LiteDB's Direct mode does not stop a second
/// writer on Linux (its data file is opened with a shared lock), so the whole open holds an exclusive
/// lock on FILE.lock: one process per file.
/// </summary>
internal sealed partial class LiteDbOutboxStore : IOutboxStore
{
    // Collections (docs/client.md, "Outbox stores": the LiteDB layout).
    private const string Producers = "producers";
    private const string Ops = "ops";
    private const string Batches = "batches";
    private const string Rejections = "rejections";
    private const string Intents = "intents";
    private const string SetAsideCol = "set_aside";
    private const string Meta = "meta";

    // op id → (share, seq): a primary-key lookup. Measured: the same lookup through a secondary index on ops.op_id
    // cost ~2.4 ms per enqueue (20× the whole enqueue without it) at 64 concurrent 1 KiB enqueues.
    private const string OpIds = "op_ids";

    private static readonly TimeSpan s_lockPoll = TimeSpan.FromMilliseconds(20);

    private readonly LiteDatabase _db;
    private readonly FsyncLogStream _log;
    private readonly FileStream _lockFile;
    private readonly OutboxGate _gate;
    private readonly OutboxOptions _options;
    private readonly TimeProvider _time;
    private readonly GroupCommitQueue _enqueues;
    private readonly ILiteCollection<BsonDocument> _producers, _ops, _opIds, _batches, _rejections, _intents, _setAside;

    private LiteDbOutboxStore(string path, LiteDatabase db, FsyncLogStream log, FileStream lockFile, OutboxOptions options, TimeProvider time)
    {
        Path = path;
        _db = db;
        _log = log;
        _lockFile = lockFile;
        _options = options;
        _time = time;
        _producers = db.GetCollection(Producers);
        _ops = db.GetCollection(Ops);
        _batches = db.GetCollection(Batches);
        _rejections = db.GetCollection(Rejections);
        _intents = db.GetCollection(Intents);
        _setAside = db.GetCollection(SetAsideCol);
        _opIds = db.GetCollection(OpIds);
        _hasSetAside = CountSetAside() > 0;
        _gate = new OutboxGate(this, Damaged, ex => ex is LiteException l && IsDamage(l) ? Damaged("LiteDB cannot read it: " + l.Message, l) : null);
        _enqueues = new GroupCommitQueue(options, _gate.Lock, CommitGroupDurably, DescribeCommitError);
    }

    public string Path { get; }

    public OutboxEngine Engine { get; } = new LiteDbOutboxEngine();

    /// <summary>fsync calls on the log so far (tests: a durable enqueue makes at least one).</summary>
    internal long LogFsyncs => _log.Fsyncs;

    /// <summary>LiteDB's own name for a data file's log: FILE-log.EXT beside it (LiteDB FileHelper.GetLogFile).</summary>
    internal static string LogPathOf(string path) =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, System.IO.Path.GetFileNameWithoutExtension(path) + "-log" + System.IO.Path.GetExtension(path));

    /// <summary>
    /// Opens the outbox file, waiting up to <paramref name="lockWait"/> for another process to close it. A
    /// missing file is a fresh outbox, created whole (mode 0600) before it appears under its name; an
    /// empty, damaged or encrypted file, or one whose log went missing after an unclean close, is refused.
    /// </summary>
    public static LiteDbOutboxStore Open(string path, OutboxOptions options, TimeProvider time, TimeSpan lockWait)
    {
        options.Validate();
        RefusePassword(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var lockFile = TakeLock(path, lockWait);
        try
        {
            if (!File.Exists(path))
            {
                CreateWhole(path);
            }

            var hadLog = File.Exists(LogPathOf(path));
            CheckBeforeOpen(path);
            var log = FsyncLogStream.Open(LogPathOf(path), options.FsyncEveryCommit);
            try
            {
                var db = OpenDatabase(path, log);
                CheckSession(db, path, hadLog);
                return new LiteDbOutboxStore(path, db, log, lockFile, options, time);
            }
            catch
            {
                log.Dispose();
                throw;
            }
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The single-sender lock is the process lock this store has held since it opened: nothing more to take
    /// (another process could not have opened the file).
    /// </summary>
    public void AcquireWriterLock()
    {
    }

    public async ValueTask DisposeAsync()
    {
        await _enqueues.CompleteAsync().ConfigureAwait(false);
        await _gate.CloseAsync(() =>
        {
            Close();
            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);
    }

    private void Close()
    {
        try
        {
            // A clean close: the mark goes, and LiteDB checkpoints the log into the data file as it closes.
            _db.GetCollection(Meta).Upsert(new BsonDocument { ["_id"] = "session", ["in_use"] = false });
        }
        catch (Exception ex) when (ex is LiteException or IOException)
        {
            // A damaged or full file keeps its mark: the next open checks it again.
        }

        _db.Dispose();
        var emptyLog = _log.Length == 0;
        _log.Dispose();
        if (emptyLog)
        {
            File.Delete(LogPathOf(Path));
        }

        _lockFile.Dispose();
    }

    /// <summary>
    /// The exclusive lock on FILE.lock (the SQLite store's writer lock file), polled until <paramref name="wait"/>
    /// has passed. Real time, not the client's clock: the wait is for another process.
    /// </summary>
    private static FileStream TakeLock(string path, TimeSpan wait)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive advisory lock across processes on Linux (flock).
                return new FileStream(path + ".lock", OwnerOnly(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException ex) when (ex is not FileNotFoundException and not DirectoryNotFoundException)
            {
                if (Stopwatch.GetElapsedTime(started) >= wait)
                {
                    throw new OutboxInUseException(path, ex);
                }

                Thread.Sleep(s_lockPoll);
            }
        }
    }

    private static LiteDatabase OpenDatabase(string path, FsyncLogStream log)
    {
        var settings = new EngineSettings
        {
            Filename = path,
            LogStream = log,
            // Sorts spill to memory, never to a FILE-tmp with default permissions (the outbox's queries are index ranges).
            TempStream = new MemoryStream(),
            // Ordinal: share ids and op ids are case-sensitive, and keys sort by their bytes.
            Collation = Collation.Binary,
        };
        try
        {
            return new LiteDatabase(new LiteEngine(settings));
        }
        catch (LiteException ex)
        {
            throw new OutboxCorruptException(path, "LiteDB cannot open it: " + ex.Message, ex);
        }
    }

    /// <summary>Runs <paramref name="work"/> under the store's lock (<see cref="OutboxGate"/>).</summary>
    private Task<T> WithDbAsync<T>(Func<T> work) => _gate.RunAsync(work);

    private Task WithDbAsync(Action work) => _gate.RunAsync(work);

    /// <summary>
    /// One LiteDB transaction around <paramref name="work"/>, committed (and so fsynced) when it returns. LiteDB
    /// binds a transaction to its thread: <paramref name="work"/> is synchronous, under the store's lock.
    /// </summary>
    private T InTransaction<T>(Func<T> work)
    {
        if (!_db.BeginTrans())
        {
            throw new InvalidOperationException("A LiteDB transaction is already open on this thread.");
        }

        try
        {
            var result = work();
            _db.Commit();
            return result;
        }
        catch
        {
            // LiteDB rolls an explicit transaction back itself when one of its calls throws; this covers ours.
            _db.Rollback();
            throw;
        }
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    internal static FileStreamOptions OwnerOnly(FileMode mode, FileAccess access, FileShare share)
    {
        var o = new FileStreamOptions { Mode = mode, Access = access, Share = share };
        if (!OperatingSystem.IsWindows())
        {
            o.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return o;
    }
}
