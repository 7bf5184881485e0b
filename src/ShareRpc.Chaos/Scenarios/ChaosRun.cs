using System.Diagnostics;
using System.Globalization;
using System.Text;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>Totals of a chaos run: scenarios, ops, faults fired by kind, violations by kind, and the reports.</summary>
public sealed class ChaosReport
{
    public int Scenarios { get; set; }
    public long Ops { get; set; }
    public int CrashLoops { get; set; }
    public int Kills { get; set; }
    public Dictionary<FaultKind, long> Faults { get; } = FaultKinds.All.ToDictionary(k => k, _ => 0L);
    public Dictionary<string, long> Violations { get; } = Violation.Kinds.ToDictionary(k => k, _ => 0L, StringComparer.Ordinal);
    public List<string> Reports { get; } = new();

    /// <summary>The stores the scenarios' and crash loops' servers really ran on ("sqlite", "postgres").</summary>
    public SortedSet<string> Stores { get; } = new(StringComparer.Ordinal);

    /// <summary>The engines of the scenarios' and crash loops' client outboxes ("sqlite", "litedb").</summary>
    public SortedSet<string> OutboxEngines { get; } = new(StringComparer.Ordinal);
    public TimeSpan Elapsed { get; set; }

    public long ViolationCount => Violations.Values.Sum();

    /// <summary>Errors the in-process servers logged (exceptions no handler mapped to a status): server bugs, reported beside the violations.</summary>
    public long ServerErrors { get; set; }

    public void Add(ScenarioResult r)
    {
        lock (this)
        {
            Scenarios++;
            Ops += r.Ops;
            Stores.Add(r.Store);
            OutboxEngines.Add(r.OutboxEngine);
            ServerErrors += r.ServerErrors.Count;
            foreach (var (k, n) in r.Faults)
            {
                Faults[k] += n;
            }

            foreach (var v in r.Violations)
            {
                Violations[v.Kind] = Violations.GetValueOrDefault(v.Kind) + 1;
            }

            if (r.Report is not null)
            {
                Reports.Add(r.Report);
            }
        }
    }

    public void Add(CrashLoopResult r)
    {
        lock (this)
        {
            CrashLoops++;
            Kills += r.Kills;
            Stores.Add(r.Store);
            OutboxEngines.Add(r.OutboxEngine);
            Ops += r.Ops;
            foreach (var v in r.Violations)
            {
                Violations[v.Kind] = Violations.GetValueOrDefault(v.Kind) + 1;
            }

            if (r.Report is not null)
            {
                Reports.Add(r.Report);
            }
        }
    }

    /// <summary>The table <c>sharerpc chaos</c> prints.</summary>
    public string Table()
    {
        var b = new StringBuilder();
        void Row(string name, object value) => b.Append(CultureInfo.InvariantCulture, $"  {name,-22} {value,10}\n");
        b.Append("chaos run\n");
        Row("store", Stores.Count == 0 ? "-" : string.Join("+", Stores));
        Row("outbox engine", OutboxEngines.Count == 0 ? "-" : string.Join("+", OutboxEngines));
        Row("scenarios", Scenarios);
        Row("crash loops", CrashLoops);
        Row("processes killed", Kills);
        Row("ops", Ops);
        Row("minutes", Elapsed.TotalMinutes.ToString("0.00", CultureInfo.InvariantCulture));
        b.Append("faults injected\n");
        foreach (var k in FaultKinds.All)
        {
            Row(k.Name(), Faults[k]);
        }

        Row("total", Faults.Values.Sum() + Kills);
        b.Append("violations\n");
        foreach (var (k, n) in Violations)
        {
            Row(k, n);
        }

        Row("total", ViolationCount);
        Row("server errors", ServerErrors);
        return b.ToString();
    }
}

/// <summary>Runs many seeded scenarios, a few at a time.</summary>
public static class ChaosRun
{
    public static async Task<ChaosReport> RunSeedsAsync(int seedStart, int seeds, ScenarioOptions options, int parallelism,
        ChaosReport? report = null, Action<ScenarioResult>? progress = null, CancellationToken ct = default)
    {
        report ??= new ChaosReport();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(seedStart, seeds), new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = ct },
            async (seed, token) =>
            {
                var r = await ScenarioRunner.RunAsync(seed, options, token).ConfigureAwait(false);
                report.Add(r);
                progress?.Invoke(r);
            }).ConfigureAwait(false);
        report.Elapsed += clock.Elapsed;
        return report;
    }
}
