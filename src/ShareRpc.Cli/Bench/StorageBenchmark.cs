using System.Diagnostics;
using Microsoft.Data.Sqlite;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// The storage ceiling: batched inserts into one SQLite file (WAL, synchronous=FULL), 1 KiB rows,
/// UUIDv7 ids under a unique index (the shape of the server's log), N rows per transaction.
/// </summary>
internal static class StorageBenchmark
{
    public sealed record Case(int RowsPerTransaction, long Rows, double Seconds, double RowsPerSecond, double CommitMeanMs);

    public sealed record Result(int ValueBytes, Case[] Cases, double BestRowsPerSecond, FsyncLatency SingleRowCommit);

    /// <summary>Latency of one-row commits (each one fsync of the WAL): the floor and the tail of every durable step.</summary>
    public sealed record FsyncLatency(long Commits, double P50Ms, double P99Ms, double P999Ms, double MaxMs);

    public static async Task<Result> RunAsync(TimeSpan duration, int valueBytes, TextWriter log, CancellationToken ct)
    {
        log.WriteLine($"storage bench: SQLite WAL synchronous=FULL, {valueBytes} B rows, UUIDv7 unique index, {duration.TotalSeconds:0.#} s per case");
        var cases = new List<Case>();
        foreach (var perTx in new[] { 256, 512 })
        {
            var dir = BenchSupport.TempDir("storage");
            try
            {
                var c = await Task.Run(() => RunCase(Path.Combine(dir, "s.db"), perTx, duration, valueBytes, ct), ct);
                log.WriteLine($"  {perTx} rows/tx: {c.RowsPerSecond:N0} rows/s (commit {c.CommitMeanMs:0.00} ms)");
                cases.Add(c);
            }
            finally
            {
                BenchSupport.DeleteDir(dir);
            }
        }

        var single = BenchSupport.TempDir("storage");
        FsyncLatency fsync;
        try
        {
            fsync = await Task.Run(() => SingleRowCommits(Path.Combine(single, "s.db"), duration, valueBytes, ct), ct);
            log.WriteLine($"  1 row/tx: commit p50 {fsync.P50Ms:0.00} ms, p99 {fsync.P99Ms:0.00} ms, p99.9 {fsync.P999Ms:0.00} ms, max {fsync.MaxMs:0.0} ms ({fsync.Commits:N0} commits)");
        }
        finally
        {
            BenchSupport.DeleteDir(single);
        }

        return new Result(valueBytes, [.. cases], cases.Max(c => c.RowsPerSecond), fsync);
    }

    private static Case RunCase(string path, int perTx, TimeSpan duration, int valueBytes, CancellationToken ct)
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        Exec(db, "PRAGMA journal_mode=WAL;");
        Exec(db, "PRAGMA synchronous=FULL;");
        Exec(db, "CREATE TABLE log(id INTEGER PRIMARY KEY, op_id TEXT NOT NULL, value BLOB NOT NULL); CREATE UNIQUE INDEX log_op ON log(op_id);");
        var value = new byte[valueBytes];
        Random.Shared.NextBytes(value);
        long rows = 0;
        double commitMs = 0;
        long commits = 0;
        var sw = Stopwatch.StartNew();
        var warm = duration / 4;
        var measuring = false;
        long rowsAtStart = 0;
        var startedAt = TimeSpan.Zero;
        while (!ct.IsCancellationRequested)
        {
            var elapsed = sw.Elapsed;
            if (!measuring && elapsed >= warm)
            {
                measuring = true;
                rowsAtStart = rows;
                startedAt = elapsed;
                commitMs = 0;
                commits = 0;
            }

            if (measuring && elapsed - startedAt >= duration)
            {
                break;
            }

            using var tx = db.BeginTransaction();
            using var cmd = db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO log(op_id, value) VALUES ($id, $v)";
            var pId = cmd.Parameters.Add("$id", SqliteType.Text);
            var pV = cmd.Parameters.Add("$v", SqliteType.Blob);
            pV.Value = value;
            cmd.Prepare();
            for (var i = 0; i < perTx; i++)
            {
                pId.Value = Guid.CreateVersion7().ToString();
                cmd.ExecuteNonQuery();
            }

            var c0 = Stopwatch.GetTimestamp();
            tx.Commit();
            commitMs += Stopwatch.GetElapsedTime(c0).TotalMilliseconds;
            commits++;
            rows += perTx;
        }

        var seconds = (sw.Elapsed - startedAt).TotalSeconds;
        var measured = rows - rowsAtStart;
        return new Case(perTx, measured, BenchSupport.R(seconds, 2), BenchSupport.R(measured / seconds), BenchSupport.R(commits == 0 ? 0 : commitMs / commits, 3));
    }

    private static FsyncLatency SingleRowCommits(string path, TimeSpan duration, int valueBytes, CancellationToken ct)
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        Exec(db, "PRAGMA journal_mode=WAL;");
        Exec(db, "PRAGMA synchronous=FULL;");
        Exec(db, "CREATE TABLE log(id INTEGER PRIMARY KEY, op_id TEXT NOT NULL, value BLOB NOT NULL);");
        using var cmd = db.CreateCommand();
        cmd.CommandText = "INSERT INTO log(op_id, value) VALUES ($id, $v)";
        var pId = cmd.Parameters.Add("$id", SqliteType.Text);
        cmd.Parameters.AddWithValue("$v", new byte[valueBytes]);
        var lat = new List<double>();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration && !ct.IsCancellationRequested)
        {
            pId.Value = Guid.CreateVersion7().ToString();
            var t0 = Stopwatch.GetTimestamp();
            cmd.ExecuteNonQuery();
            lat.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }

        var a = lat.Order().ToArray();
        return new FsyncLatency(a.Length, BenchSupport.R(BenchSupport.Percentile(a, 0.5), 3), BenchSupport.R(BenchSupport.Percentile(a, 0.99), 3), BenchSupport.R(BenchSupport.Percentile(a, 0.999), 3), BenchSupport.R(a.Length == 0 ? 0 : a[^1], 3));
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
