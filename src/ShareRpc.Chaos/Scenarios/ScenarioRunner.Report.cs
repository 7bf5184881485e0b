// ScenarioRunner: the report printed for a violation or a server error.
using System.Globalization;
using System.Text;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;

namespace ShareRpc.Chaos.Scenarios;

public static partial class ScenarioRunner
{
    /// <summary>The text printed for a violation: seed, workload, fault schedule and the smallest history slice.</summary>
    public static string Report(int seed, ScenarioOptions options, WorkloadSpec spec, FaultSchedule schedule, OpHistory history, IReadOnlyList<Violation> violations,
        IReadOnlyList<string>? serverErrors = null)
    {
        var b = new StringBuilder();
        serverErrors ??= [];
        var canary = options.Canary ? " (canary)" : "";
        if (violations.Count > 0)
        {
            b.Append(CultureInfo.InvariantCulture, $"VIOLATION seed {seed}{canary} on {options.Store}: {violations.Count} violation(s)\n");
        }
        else
        {
            b.Append(CultureInfo.InvariantCulture, $"SERVER ERROR seed {seed}{canary} on {options.Store}: no violation, {serverErrors.Count} server error(s)\n");
        }
        foreach (var v in violations.Take(5))
        {
            b.Append(CultureInfo.InvariantCulture, $"  [{v.Kind}] {v.Message}\n");
        }

        foreach (var e in serverErrors.Take(5))
        {
            b.Append(CultureInfo.InvariantCulture, $"  [server error] {e}\n");
        }

        b.Append("workload:\n").Append(spec);
        b.Append("fault schedule:\n").Append(schedule);
        if (violations.Count > 0)
        {
            var first = violations[0];
            b.Append(CultureInfo.InvariantCulture, $"history slice for [{first.Kind}] (ops {string.Join(", ", first.OpIds)}):\n");
            foreach (var e in history.Slice(first.OpIds, first.Actors))
            {
                b.Append(e).Append('\n');
            }
        }

        b.Append(CultureInfo.InvariantCulture, $"reproduce: sharerpc chaos --seeds 1 --seed-start {seed}{(options.Canary ? " --canary" : "")}{(options.PostgresConnectionString is null ? "" : " --store postgres")}\n");
        return b.ToString();
    }
}
