namespace ShareRpc.Client.LiteDb;

/// <summary>
/// LiteDB's log file (FILE-log.EXT), handed to LiteDB as <c>EngineSettings.LogStream</c> so that a commit is on
/// disk before <c>Commit</c> returns (docs/design.md, "Client: the durable outbox": an op is durable before
/// Enqueue returns). LiteDB 5.0.21 itself never fsyncs its log (docs/design.md, "Storage").
/// <para>
/// How LiteDB 5.0.21 commits (LiteDB/Engine/Services/TransactionService.cs, PersistDirtyPages, and
/// DiskService.WriteLogDisk): every dirty page of the transaction is written to the end of the log, in order,
/// synchronously, and the last one carries IsConfirmed = 1 (byte 18 of its page header); on open, only the pages
/// of confirmed transactions are replayed. So the order that makes a commit durable and whole is: the
/// commit's other pages reach the disk (fsync), then its confirming page is written and reaches the disk
/// (fsync), then Commit returns. A power cut before the second fsync leaves an unconfirmed transaction, which
/// LiteDB ignores; one after it leaves every page of it. At most 2 fsyncs per commit (1 when the commit is one page).
/// </para>
/// <para>
/// A checkpoint copies the confirmed pages into the data file and fsyncs that file (DiskService.WriteDataDisk)
/// before it truncates the log through <see cref="SetLength"/>, so the truncation never runs ahead of the data.
/// </para>
/// </summary>
internal sealed class FsyncLogStream : Stream
{
    // LiteDB 5 pages: 8 KiB, IsConfirmed at byte 18 of the page header (BasePage.P_IS_CONFIRMED).
    internal const int PageBytes = 8192;
    private const int ConfirmedFlagOffset = 18;

    private readonly FileStream _file;
    private readonly bool _fsync;
    private bool _unsynced;
    private long _fsyncs;

    private FsyncLogStream(FileStream file, bool fsync)
    {
        _file = file;
        _fsync = fsync;
    }

    /// <summary>Opens (or creates, owner-only) the log file; <paramref name="fsync"/> false: no fsync (OutboxOptions.FsyncEveryCommit).</summary>
    public static FsyncLogStream Open(string path, bool fsync)
    {
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.Read, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            // The log holds sturdy refs (secrets) as the data file does.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FsyncLogStream(new FileStream(path, options), fsync);
    }

    /// <summary>fsync calls made on the log so far (the tests check a commit makes at least one).</summary>
    public long Fsyncs => Interlocked.Read(ref _fsyncs);

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => true;

    public override long Length => _file.Length;

    public override long Position
    {
        get => _file.Position;
        set => _file.Position = value;
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        var confirms = _fsync && count == PageBytes && buffer[offset + ConfirmedFlagOffset] == 1;
        if (confirms && _unsynced)
        {
            // The commit's earlier pages first: a confirmed page must never be on disk without them.
            Sync();
        }

        _file.Write(buffer, offset, count);
        _unsynced = true;
        if (confirms)
        {
            Sync();
        }
    }

    /// <summary>LiteDB flushes the log only when it crops a torn last page on open: make that durable too.</summary>
    public override void Flush()
    {
        if (_fsync)
        {
            Sync();
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => _file.Read(buffer, offset, count);

    public override long Seek(long offset, SeekOrigin origin) => _file.Seek(offset, origin);

    public override void SetLength(long value) => _file.SetLength(value);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _file.Dispose();
        }

        base.Dispose(disposing);
    }

    private void Sync()
    {
        _file.Flush(flushToDisk: true);
        _unsynced = false;
        Interlocked.Increment(ref _fsyncs);
    }
}
