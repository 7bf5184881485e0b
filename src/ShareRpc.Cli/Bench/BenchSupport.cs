using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.Cli.Bench;

/// <summary>Child processes, /proc readings, percentiles and the raw-wire preload the benchmarks share.</summary>
internal static class BenchSupport
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>This CLI again, as a child process (stdin and stdout redirected).</summary>
    public static Process StartSelf(params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (!Environment.ProcessPath!.EndsWith("sharerpc", StringComparison.Ordinal))
        {
            psi.ArgumentList.Add(typeof(BenchSupport).Assembly.Location);
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var p = Process.Start(psi)!;

        // Progress lines on stderr are not part of any figure; drain them so the child never blocks.
        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>
    /// Runs a child from <see cref="StartSelf"/> with no input to its exit: its standard output and
    /// its peak RSS (VmHWM, sampled every 20 ms). A cancelled or failed wait leaves no child running.
    /// </summary>
    public static async Task<(string Output, long PeakRssBytes)> RunToExitAsync(Process child, CancellationToken ct)
    {
        try
        {
            child.StandardInput.Close();
            var stdout = child.StandardOutput.ReadToEndAsync(ct);
            long peak = 0;
            while (!child.HasExited)
            {
                peak = Math.Max(peak, ReadRss(child.Id));
                await Task.WhenAny(child.WaitForExitAsync(ct), Task.Delay(20, ct));
            }

            await child.WaitForExitAsync(ct);
            return (await stdout, peak);
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(true);
            }
        }
    }

    /// <summary>VmHWM (peak) or VmRSS of a process, in bytes (0 once it is gone).</summary>
    public static long ReadRss(int pid, bool peak = true)
    {
        var field = peak ? "VmHWM:" : "VmRSS:";
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return 0;
    }

    /// <summary>Reads lines until one starts with <paramref name="prefix"/>; returns the rest of it.</summary>
    public static async Task<string> ReadLineStartingAsync(Process p, string prefix, CancellationToken ct)
    {
        while (await p.StandardOutput.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line[prefix.Length..];
            }
        }

        throw new InvalidOperationException($"child process exited before printing '{prefix}'.");
    }

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    public static double R(double v, int digits = 0) => Math.Round(v, digits);

    public static string Machine()
    {
        var cpu = "";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "";
        }
        catch (IOException)
        {
        }

        return $"{Environment.ProcessorCount} cores{(cpu.Length > 0 ? " (" + cpu + ")" : "")}, {Environment.OSVersion}, .NET {Environment.Version}";
    }

    public static string TempDir(string name) => Directory.CreateTempSubdirectory("sharerpc-bench-" + name + "-").FullName;

    public static void DeleteDir(string dir)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(dir, true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>A Grpc.Net.Client channel over the SDK's tuned handler (trusting <paramref name="root"/> for https).</summary>
    public static GrpcChannel Channel(string address, X509Certificate2? root = null) =>
        GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = new ShareRpcChannelOptions { TrustedRootCertificate = root }.CreateHttpHandler(),
            MaxSendMessageSize = 4 * 1024 * 1024,
        });

    /// <summary>
    /// Streams <paramref name="ops"/> Put ops of <paramref name="valueBytes"/> straight over AppendOps
    /// (own producer and batch ids, no outbox), pipelined, and waits for every ack. Returns ops/s.
    /// </summary>
    public static async Task<double> PreloadAsync(GrpcChannel channel, string liveRef, long ops, int valueBytes, int batchOps, CancellationToken ct)
    {
        if (ops <= 0)
        {
            return 0;
        }

        var producer = "preload-" + Guid.CreateVersion7().ToString("N");
        var value = ByteString.CopyFrom(new byte[valueBytes]);
        using var call = new Sharerpc.V1.ShareRpc.ShareRpcClient(channel).AppendOps(new Metadata { { "authorization", "Bearer " + liveRef } }, null, ct);
        const int Window = 16;
        using var window = new SemaphoreSlim(Window, Window);
        long acked = 0;
        var sw = Stopwatch.StartNew();
        var reader = Task.Run(
            async () =>
            {
                while (await call.ResponseStream.MoveNext(ct))
                {
                    var r = call.ResponseStream.Current;
                    if (r.BatchStatus != BatchStatus.Accepted)
                    {
                        throw new InvalidOperationException($"preload batch {r.BatchId}: {r.BatchStatus}");
                    }

                    acked += r.Acks.Count;
                    window.Release();
                }
            },
            ct);
        ulong seq = 0;
        while ((long)seq < ops)
        {
            await window.WaitAsync(ct);
            if (reader.IsFaulted)
            {
                break;
            }

            var batch = new AppendOpsRequest { BatchId = Guid.CreateVersion7().ToString(), ProducerId = producer };
            var n = (int)Math.Min(batchOps, ops - (long)seq);
            for (var i = 0; i < n; i++)
            {
                seq++;
                batch.Ops.Add(new Op
                {
                    OpId = Guid.CreateVersion7().ToString(),
                    Seq = seq,
                    Put = new Put { Collection = "preload", Key = "p" + seq.ToString(CultureInfo.InvariantCulture), Value = value },
                });
            }

            await call.RequestStream.WriteAsync(batch, ct);
        }

        await call.RequestStream.CompleteAsync();
        await reader;
        if (acked != ops)
        {
            throw new InvalidOperationException($"preload: {acked} of {ops} ops acked.");
        }

        return ops / sw.Elapsed.TotalSeconds;
    }
}

/// <summary>
/// A server child process: <c>sharerpc bench server</c> (the share server plus a MeterListener on
/// "ShareRpc.Server" that answers "stats" on stdin), or plain <c>sharerpc serve</c>.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process, string address, string dataDir)
    {
        _process = process;
        Address = address;
        DataDir = dataDir;
    }

    public string Address { get; }

    public string DataDir { get; }

    public int Pid => _process.Id;

    /// <param name="postgres">A PostgreSQL connection string: the server keeps shares there instead of SQLite.</param>
    public static async Task<ServerProcess> StartAsync(string dataDir, CancellationToken ct, string? postgres = null)
    {
        var p = postgres is null
            ? BenchSupport.StartSelf("bench", "server", "--data", dataDir)
            : BenchSupport.StartSelf("bench", "server", "--data", dataDir, "--pg", postgres);
        try
        {
            var address = await BenchSupport.ReadLineStartingAsync(p, "listening on ", ct);
            return new ServerProcess(p, address, dataDir);
        }
        catch
        {
            p.Kill(true);
            throw;
        }
    }

    /// <summary>Server-side metrics since the last call (and resets them).</summary>
    public async Task<ServerStats> StatsAsync(CancellationToken ct)
    {
        await _process.StandardInput.WriteLineAsync("stats");
        await _process.StandardInput.FlushAsync(ct);
        var json = await BenchSupport.ReadLineStartingAsync(_process, "stats ", ct);
        return JsonSerializer.Deserialize<ServerStats>(json, BenchSupport.Json)!;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(true);
            await _process.WaitForExitAsync(CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}

/// <summary>What the server child measured (MeterListener on "ShareRpc.Server" plus the group committer).</summary>
internal sealed record ServerStats(
    long Batches,
    double BatchCommitLatencyMeanMs,
    double BatchCommitLatencyP50Ms,
    double BatchCommitLatencyP99Ms,
    long OpsApplied,
    long OpsDuplicate,
    long Commits,
    double WritesPerCommit,
    double CommitLoopBusyFraction,
    double CommitMeanMs,
    double CpuSeconds,
    double WallMs,
    long StreamsOpened,
    Dictionary<string, SpanStat> Spans);

/// <summary>Calls of one store method and the milliseconds they took in all.</summary>
internal sealed record SpanStat(long Count, double TotalMs);
