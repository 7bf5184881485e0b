using System.Diagnostics;
using ShareRpc.Client;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// A backlog of pending ops replayed from the outbox after a restart: seconds until all acked,
/// duplicates applied, and this (client) process's peak RSS against a small-backlog baseline
/// measured in the same run. The server runs as a separate <c>sharerpc serve</c> process so its
/// memory is not counted.
/// </summary>
internal static class ReplayBenchmark
{
    public sealed record Case(int Ops, double EnqueueSeconds, double ReplaySeconds, double OpsPerSecond, long PeakRssBytes, long DuplicatesApplied, long Applied);

    public sealed record Result(Case Baseline, Case Backlog, double PeakRssRatio);

    public static async Task<Result> RunAsync(int ops, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var dir = Directory.CreateTempSubdirectory("sharerpc-replay-").FullName;
        try
        {
            log.WriteLine($"replay bench: {ops:N0} pending ops of {valueBytes} B, server in a child process, SQLite FULL on both ends");
            var baseline = await RunCaseAsync(Path.Combine(dir, "small"), 1_000, valueBytes, log, ct);
            var backlog = await RunCaseAsync(Path.Combine(dir, "big"), ops, valueBytes, log, ct);
            return new Result(baseline, backlog, Math.Round((double)backlog.PeakRssBytes / baseline.PeakRssBytes, 2));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<Case> RunCaseAsync(string dir, int ops, int valueBytes, TextWriter log, CancellationToken ct)
    {
        Directory.CreateDirectory(dir);
        using var server = StartServer(Path.Combine(dir, "server"));
        try
        {
            var address = await ReadAddressAsync(server, ct);
            var outbox = Path.Combine(dir, "outbox.db");
            string sturdy;

            // 1. Fill the outbox while nothing is sent: a writer on a client whose sender holds every send.
            var sw = Stopwatch.StartNew();
            var hold = new TaskCompletionSource();
            await using (var filler = new ShareRpcClient(new ShareRpcClientOptions
            {
                OutboxPath = outbox,
                Faults = new ClientFaultHooks { BeforeSend = _ => hold.Task },
            }))
            {
                sturdy = await filler.EnsureShareAsync(address, "replay", "", ct);
                var writer = filler.OpenWriter(sturdy);
                var value = new byte[valueBytes];
                const int Concurrency = 64;
                var next = 0;
                await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
                {
                    while (Interlocked.Increment(ref next) <= ops)
                    {
                        await writer.PutAsync("docs", "k" + Random.Shared.Next(100_000), value);
                    }
                }));
                hold.TrySetCanceled();
            }

            var enqueueSeconds = sw.Elapsed.TotalSeconds;

            // 2. "Restart": a fresh `sharerpc append` process on the same outbox, with no new input,
            //    resumes and drains it. Its peak RSS (VmHWM) is the figure: nothing else lives there.
            sw.Restart();
            using var replayer = StartSelf("append", "--ref", sturdy, "--outbox", outbox, "--file", "/dev/null");
            long peak = 0;
            while (!replayer.HasExited)
            {
                peak = Math.Max(peak, ReadPeakRss(replayer.Id));
                await Task.Delay(20, ct);
            }

            var output = await replayer.StandardOutput.ReadToEndAsync(ct);
            if (replayer.ExitCode != 0)
            {
                throw new InvalidOperationException($"replaying process failed ({replayer.ExitCode}): {output}");
            }

            var replaySeconds = sw.Elapsed.TotalSeconds;
            await using var observer = new ShareRpcClient();
            var applied = (long)(await observer.RedeemAsync(sturdy, ct)).Cursor;
            var c = new Case(ops, Math.Round(enqueueSeconds, 2), Math.Round(replaySeconds, 2), Math.Round(ops / replaySeconds), peak, applied - ops, applied);
            log.WriteLine($"  {ops,9:N0} ops: enqueue {c.EnqueueSeconds:0.00} s; restart + replay {c.ReplaySeconds:0.00} s ({c.OpsPerSecond:N0} ops/s); replaying process peak RSS {peak / 1048576.0:0} MiB; applied {applied:N0}, duplicates applied {c.DuplicatesApplied}");
            return c;
        }
        finally
        {
            server.Kill(true);
            await server.WaitForExitAsync(CancellationToken.None);
        }
    }

    private static Process StartServer(string dataDir) => StartSelf("serve", "--port", "0", "--data", dataDir);

    /// <summary>This CLI again, as a child process.</summary>
    private static Process StartSelf(params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (!Environment.ProcessPath!.EndsWith("sharerpc", StringComparison.Ordinal))
        {
            psi.ArgumentList.Add(typeof(ReplayBenchmark).Assembly.Location);
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi)!;
    }

    /// <summary>VmHWM: the process's peak resident set so far, from /proc (0 once it is gone).</summary>
    private static long ReadPeakRss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return long.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }

    private static async Task<string> ReadAddressAsync(Process server, CancellationToken ct)
    {
        while (await server.StandardOutput.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith("listening on ", StringComparison.Ordinal))
            {
                return line["listening on ".Length..];
            }
        }

        throw new InvalidOperationException("sharerpc serve exited before listening.");
    }
}
