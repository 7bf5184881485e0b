using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ShareRpc.Server.Diagnostics;
using ShareRpc.Server.Hosting;
using ShareRpc.Server.Postgres;
using ShareRpc.Server.Storage;
using ShareRpc.Server.Storage.Sqlite;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// <c>sharerpc bench server --data DIR [--pg CONNSTRING]</c> (hidden): the share server exactly as <c>sharerpc serve</c>
/// builds it, on the embedded SQLite store (or PostgreSQL) seen through a timing proxy, plus a MeterListener on
/// the "ShareRpc.Server" meter. Each line "stats" on stdin prints one line "stats {json}" with the
/// measurements since the previous one: the server side of the durable path, measured.
/// </summary>
internal static class BenchServer
{
    private static readonly ConcurrentDictionary<string, Span> s_spans = new(StringComparer.Ordinal);
    private static readonly List<double> s_commitLatency = new();
    private static long s_applied;
    private static long s_duplicate;
    private static long s_commits;
    private static long s_writes;
    private static long s_streams;

    public static async Task<int> RunAsync(string dataDir, string? postgres, CancellationToken ct)
    {
        // The same server `sharerpc serve` runs, with the store seen through the timing proxy
        // (one node: its own commits wake its subscribers, so the change feed is not needed here).
        IShareStore store = postgres is null
            ? SqliteShareStore.Open(dataDir)
            : await PostgresShareStore.OpenAsync(new PostgresStoreOptions { ConnectionString = postgres }, ct);
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == ShareRpcServerDiagnostics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            if (instrument.Name == ServerMetrics.CommitDuration)
            {
                lock (s_commitLatency)
                {
                    s_commitLatency.Add(value * 1000); // seconds on the instrument (UCUM "s"), milliseconds in the report
                }
            }
        });
        meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == ServerMetrics.Ops)
            {
                // The outcome tag: applied | duplicate | rejected.
                foreach (var tag in tags)
                {
                    if (tag.Key != "outcome") continue;
                    if (Equals(tag.Value, "applied")) Interlocked.Add(ref s_applied, value);
                    else if (Equals(tag.Value, "duplicate")) Interlocked.Add(ref s_duplicate, value);
                }
            }
            else if (instrument.Name == ServerMetrics.Streams && value > 0)
            {
                Interlocked.Add(ref s_streams, value);
            }
        });
        meters.Start();

        await using var host = await ShareRpcServerHost.StartAsync(
            o => o.DataDirectory = dataDir,
            configureBuilder: b => b.Services.AddSingleton<IShareStore>(TimedStore.Wrap(store)),
            cancellationToken: ct);
        host.Engine.Committer.Committed += n =>
        {
            Interlocked.Increment(ref s_commits);
            Interlocked.Add(ref s_writes, n);
        };
        Console.WriteLine($"listening on {host.Address}");

        Console.Out.Flush();
        var since = Stopwatch.StartNew();
        var cpuSince = Process.GetCurrentProcess().TotalProcessorTime;
        while (await Console.In.ReadLineAsync(ct) is { } line)
        {
            if (line.Trim() != "stats")
            {
                continue;
            }

            var wall = since.Elapsed.TotalMilliseconds;
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            double[] lat;
            lock (s_commitLatency)
            {
                lat = [.. s_commitLatency];
                s_commitLatency.Clear();
            }

            Array.Sort(lat);
            var spans = s_spans.ToDictionary(kv => kv.Key, kv => kv.Value.Take());
            var commits = Interlocked.Exchange(ref s_commits, 0);
            var writes = Interlocked.Exchange(ref s_writes, 0);
            var busy = spans.Values.Sum(s => s.TotalMs);
            var stats = new ServerStats(
                lat.Length,
                BenchSupport.R(lat.Length == 0 ? 0 : lat.Average(), 3),
                BenchSupport.R(BenchSupport.Percentile(lat, 0.5), 3),
                BenchSupport.R(BenchSupport.Percentile(lat, 0.99), 3),
                Interlocked.Exchange(ref s_applied, 0),
                Interlocked.Exchange(ref s_duplicate, 0),
                commits,
                BenchSupport.R(commits == 0 ? 0 : (double)writes / commits, 2),
                BenchSupport.R(wall == 0 ? 0 : busy / wall, 3),
                BenchSupport.R(spans.TryGetValue("CommitAsync", out var c) && c.Count > 0 ? c.TotalMs / c.Count : 0, 3),
                BenchSupport.R((cpu - cpuSince).TotalSeconds, 2),
                BenchSupport.R(wall),
                Interlocked.Exchange(ref s_streams, 0),
                spans.Where(kv => kv.Value.Count > 0).ToDictionary(kv => kv.Key, kv => new SpanStat(kv.Value.Count, BenchSupport.R(kv.Value.TotalMs, 1))));
            Console.WriteLine("stats " + JsonSerializer.Serialize(stats, BenchSupport.Json).ReplaceLineEndings(" "));
            Console.Out.Flush();
            since.Restart();
            cpuSince = cpu;
        }

        await host.StopAsync(CancellationToken.None);
        return 0;
    }

    internal static void Record(string name, long startTimestamp)
    {
        var span = s_spans.GetOrAdd(name, _ => new Span());
        span.Add(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds);
    }

    internal sealed class Span
    {
        private long _count;
        private double _totalMs;

        public long Count => _count;

        public double TotalMs => _totalMs;

        public void Add(double ms)
        {
            lock (this)
            {
                _count++;
                _totalMs += ms;
            }
        }

        public Span Take()
        {
            lock (this)
            {
                var copy = new Span { _count = _count, _totalMs = _totalMs };
                _count = 0;
                _totalMs = 0;
                return copy;
            }
        }
    }
}

/// <summary>
/// Times every call on the store's write transactions (from the call to the completion of its task),
/// by method name. A proxy, so it follows the store contract as it changes.
/// </summary>
internal class TimedStore : DispatchProxy
{
    private object _target = null!;

    internal static IShareStore Wrap(IShareStore store)
    {
        var proxy = Create<IShareStore, TimedStore>();
        ((TimedStore)(object)proxy)._target = store;
        return proxy;
    }

    private static IShareTransaction WrapTx(IShareTransaction tx)
    {
        var proxy = Create<IShareTransaction, TimedStore>();
        ((TimedStore)(object)proxy)._target = tx;
        return proxy;
    }

    private static async Task<IShareTransaction> WrapBegin(Task<IShareTransaction> begin, long started)
    {
        var tx = await begin.ConfigureAwait(false);
        BenchServer.Record("BeginWriteAsync", started);
        return WrapTx(tx);
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        var started = Stopwatch.GetTimestamp();
        object? result;
        try
        {
            result = targetMethod!.Invoke(_target, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }

        var name = targetMethod.Name;
        if (_target is IShareStore)
        {
            return name == nameof(IShareStore.BeginWriteAsync) ? WrapBegin((Task<IShareTransaction>)result!, started) : result;
        }

        switch (result)
        {
            case Task t when t.IsCompleted:
                BenchServer.Record(name, started);
                break;
            case Task t:
                t.ContinueWith(_ => BenchServer.Record(name, started), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                break;
            case ValueTask vt when vt.IsCompleted:
                BenchServer.Record(name, started);
                break;
            case ValueTask vt:
                var task = vt.AsTask();
                task.ContinueWith(_ => BenchServer.Record(name, started), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                return new ValueTask(task);
            default:
                BenchServer.Record(name, started);
                break;
        }

        return result;
    }
}
