using Microsoft.Data.Sqlite;
using ShareRpc.Storage;
using ShareRpc.TestSupport;

namespace ShareRpc.Server.Tests;

/// <summary>
/// src/Shared/WalCheckpointer.cs (used by the server's store and the client's outbox): checkpoints
/// run on their own connection after commits, and the log stays bounded even for a writer that
/// never pauses.
/// </summary>
public sealed class WalCheckpointerTests : IDisposable
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(20);
    private readonly TempDir _dir = new("checkpointer-");

    public void Dispose() => _dir.Dispose();

    private (SqliteConnection Writer, string ConnectionString) OpenWriter()
    {
        var cs = new SqliteConnectionStringBuilder { DataSource = _dir.File("wal.db"), Pooling = false }.ToString();
        var writer = new SqliteConnection(cs);
        writer.Open();
        Exec(writer, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);");
        return (writer, cs);
    }

    [Fact]
    public async Task Commits_are_checkpointed_beside_the_writer_and_the_log_starts_over()
    {
        var (writer, cs) = OpenWriter();
        using var _ = writer;
        await using var checkpointer = WalCheckpointer.Start(writer, cs, fsync: false, interval: TimeSpan.FromMilliseconds(1));
        Assert.Equal(WalCheckpointer.DefaultInlinePages, Scalar(writer, "PRAGMA wal_autocheckpoint;"));

        for (var i = 0; i < 200; i++)
        {
            Exec(writer, "INSERT INTO t(v) VALUES (randomblob(3000));");
            checkpointer.Committed();
        }

        // Once the writer pauses, a background checkpoint copies every frame, and the next commit
        // starts the log over at its beginning: the file stops growing. Nothing else here can
        // start it over (the writer's own checkpoint waits for 16,384 pages).
        var wal = _dir.File("wal.db") + "-wal";
        await Wait.UntilAsync(() =>
        {
            var before = new FileInfo(wal).Length;
            Exec(writer, "INSERT INTO t(v) VALUES (randomblob(3000));");
            checkpointer.Committed();
            return new FileInfo(wal).Length == before;
        }, s_patience, () => $"checkpoints {checkpointer.Checkpoints}, failures {checkpointer.Failures}, log {new FileInfo(wal).Length} bytes");
        Assert.True(checkpointer.Checkpoints > 0);
        Assert.Equal(0, checkpointer.Failures);
    }

    [Fact]
    public async Task A_writer_that_never_lets_the_background_run_still_keeps_the_log_bounded()
    {
        var (writer, cs) = OpenWriter();
        using var _ = writer;
        const int InlinePages = 64;
        // An interval of an hour: after its first checkpoint the background never runs again.
        await using var checkpointer = WalCheckpointer.Start(writer, cs, fsync: false, interval: TimeSpan.FromHours(1), inlinePages: InlinePages);

        long maxWalBytes = 0;
        for (var i = 0; i < 1000; i++)
        {
            Exec(writer, "INSERT INTO t(v) VALUES (randomblob(3000));");
            checkpointer.Committed();
            maxWalBytes = Math.Max(maxWalBytes, new FileInfo(_dir.File("wal.db") + "-wal").Length);
        }

        // 1,000 commits of a page or more each, yet the log never held much more than InlinePages (plus the commit that crossed it).
        const long FrameBytes = 4096 + 24;
        Assert.InRange(maxWalBytes, 1, (InlinePages + 8) * FrameBytes + 32);
        Assert.Equal(1000L, Scalar(writer, "SELECT count(*) FROM t;"));
    }

    private static long Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
