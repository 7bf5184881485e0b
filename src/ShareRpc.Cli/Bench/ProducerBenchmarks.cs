using System.Diagnostics;
using System.Globalization;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// The paths real producers take first (issue 14): one sequential caller awaiting each
/// <c>PutAsync</c>, and <c>sharerpc append</c> on a large file. Each is reported against its own
/// physical limit measured in the same run: the outbox's 1-row commit rate (one fsync per op, what a
/// sequential caller cannot beat) and <c>bench durable</c> saturation.
/// </summary>
internal static class ProducerBenchmarks
{
    /// <param name="Commit1RowPerSecond">Sequential 1-op enqueues into the outbox alone (no sender, no server).</param>
    /// <param name="ProducerOpsPerSecond">Acked ops/s of one task awaiting each PutAsync, flushed at the end.</param>
    /// <param name="OpsPerBatch">Ops per AppendOps batch on that run (from the sender's hooks).</param>
    /// <param name="Commit1RowP50Ms">Median time of one of those commits (enqueue call to return).</param>
    /// <param name="Commit1RowP99Ms">Its 99th percentile: where WAL checkpoints on the commit path show (docs/performance.md).</param>
    public sealed record ProducerResult(double Commit1RowPerSecond, double Commit1RowP50Ms, double Commit1RowP99Ms, long Ops, double Seconds, double ProducerOpsPerSecond, long Batches, double OpsPerBatch, double RatioToCommit1Row, double? LingerMs);

    /// <param name="OpsPerSecond">Input lines / wall seconds of the whole CLI run (start, read, enqueue, every ack).</param>
    public sealed record AppendResult(long Ops, double Seconds, double OpsPerSecond, int ExitCode, long PeakRssBytes);

    public static async Task<ProducerResult> ProducerAsync(TimeSpan duration, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var dir = BenchSupport.TempDir("producer");
        try
        {
            log.WriteLine($"producer bench: one task awaiting each PutAsync (durable), {valueBytes} B values, {duration.TotalSeconds:0.#} s; against the outbox's 1-row commit rate");
            var (commit, commitP50, commitP99) = await Commit1RowAsync(Path.Combine(dir, "commit.db"), duration, valueBytes, ct);
            log.WriteLine($"  outbox alone, one 1-op commit after another: {commit:N0} commits/s, p50 {commitP50:0.00} ms, p99 {commitP99:0.00} ms");
            await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct);
            await using (var warm = await DurableBenchmark.Session.OpenAsync(server.Address, Path.Combine(dir, "warm.db"), "warm", ct))
            {
                await SequentialAsync(warm, duration / 4, valueBytes, ct);
            }

            await using var s = await DurableBenchmark.Session.OpenAsync(server.Address, Path.Combine(dir, "producer.db"), "producer", ct);
            s.Recording = true;
            var (ops, seconds) = await SequentialAsync(s, duration, valueBytes, ct);
            s.Recording = false;
            var batches = s.AckArrived.Count;
            var rate = ops / seconds;
            var result = new ProducerResult(
                BenchSupport.R(commit),
                BenchSupport.R(commitP50, 3),
                BenchSupport.R(commitP99, 3),
                ops,
                BenchSupport.R(seconds, 2),
                BenchSupport.R(rate),
                batches,
                BenchSupport.R(batches == 0 ? 0 : (double)ops / batches, 1),
                BenchSupport.R(rate / commit, 3),
                s.Client.Options.Linger.TotalMilliseconds);
            log.WriteLine($"  sequential producer: {ops:N0} ops in {seconds:0.00} s = {rate:N0} ops/s acked ({result.RatioToCommit1Row:0.00}× the 1-row commit rate), {batches:N0} batches of {result.OpsPerBatch:0.0} ops (Linger {result.LingerMs:0.#} ms)");
            return result;
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }

    /// <summary>
    /// <c>sharerpc append --file</c> of <paramref name="ops"/> put lines as a child process against a
    /// bench server: wall seconds from start to exit (every op acked).
    /// </summary>
    public static async Task<AppendResult> AppendAsync(long ops, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var dir = BenchSupport.TempDir("append");
        try
        {
            log.WriteLine($"append bench: sharerpc append --file of {ops:N0} puts ({valueBytes} B values)");
            var input = Path.Combine(dir, "ops.jsonl");
            await WriteInputAsync(input, ops, valueBytes, ct);
            await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct);
            var outbox = Path.Combine(dir, "outbox.db");
            string sturdy;
            await using (var creator = new Client.ShareRpcClient(new Client.ShareRpcClientOptions { OutboxPath = outbox }))
            {
                sturdy = await creator.EnsureShareAsync(server.Address, "append", "", ct);
            }

            var sw = Stopwatch.StartNew();
            using var child = BenchSupport.StartSelf("append", "--ref", sturdy, "--outbox", outbox, "--file", input);
            var (output, peak) = await BenchSupport.RunToExitAsync(child, ct);
            var seconds = sw.Elapsed.TotalSeconds;
            if (child.ExitCode != 0 || !output.Contains($"applied {ops}", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"sharerpc append exited {child.ExitCode}: {output.Trim()}");
            }

            var result = new AppendResult(ops, BenchSupport.R(seconds, 2), BenchSupport.R(ops / seconds), child.ExitCode, peak);
            log.WriteLine($"  {ops:N0} ops applied in {seconds:0.0} s = {result.OpsPerSecond:N0} ops/s; peak RSS {peak / 1048576.0:0} MiB");
            return result;
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }

    private static async Task<(long Ops, double Seconds)> SequentialAsync(DurableBenchmark.Session s, TimeSpan duration, int valueBytes, CancellationToken ct)
    {
        var value = new byte[valueBytes];
        Random.Shared.NextBytes(value);
        long ops = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration)
        {
            await s.Writer.PutAsync("docs", "k" + (ops % 10_000).ToString(CultureInfo.InvariantCulture), value);
            ops++;
        }

        await s.Writer.FlushAsync(ct);
        return (ops, sw.Elapsed.TotalSeconds);
    }

    private static async Task<(double PerSecond, double P50Ms, double P99Ms)> Commit1RowAsync(string path, TimeSpan duration, int valueBytes, CancellationToken ct)
    {
        var value = Google.Protobuf.ByteString.CopyFrom(new byte[valueBytes]);
        await using var outbox = OutboxStore.Open(path);
        const string ShareId = "commit";
        await outbox.EnsureProducerAsync(ShareId, "sharerpc://127.0.0.1:1/commit/cap#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        var times = new List<double>();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration && !ct.IsCancellationRequested)
        {
            var started = Stopwatch.GetTimestamp();
            await outbox.EnqueueAsync(ShareId, new Op { Put = new Put { Collection = "docs", Key = "k" + times.Count.ToString(CultureInfo.InvariantCulture), Value = value } });
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        var sorted = times.Order().ToArray();
        return (times.Count / sw.Elapsed.TotalSeconds, BenchSupport.Percentile(sorted, 0.50), BenchSupport.Percentile(sorted, 0.99));
    }

    private static async Task WriteInputAsync(string path, long ops, int valueBytes, CancellationToken ct)
    {
        var value = new string('v', valueBytes);
        await using var file = new StreamWriter(path);
        for (long i = 0; i < ops; i++)
        {
            await file.WriteLineAsync($"{{\"op\":\"put\",\"collection\":\"docs\",\"key\":\"k{i % 100_000}\",\"value\":\"{value}\"}}".AsMemory(), ct);
        }
    }
}
