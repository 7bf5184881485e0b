using System.Diagnostics;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.Scenarios;
using ShareRpc.Client.LiteDb;
using ShareRpc.TestSupport;
using Xunit.Abstractions;

namespace ShareRpc.Chaos.Tests;

/// <summary>
/// Issue 17: the chaos budget on the LiteDB outbox (docs/client.md, "Outbox stores"): 500 seeded scenarios (every
/// producer's and the owner's outbox on LiteDB) and real-process crash loops whose writer's outbox is LiteDB, with
/// zero violations. The server's store stays SQLite: what changes is the client's.
/// </summary>
[Collection(SeededRuns.Name)]
public sealed class LiteDbChaosTests(ITestOutputHelper output)
{
    private const int Seeds = 500;

    [Fact]
    public async Task Five_hundred_seeded_scenarios_on_litedb_outboxes_with_every_fault_kind_have_zero_violations()
    {
        var clock = Stopwatch.StartNew();
        var report = await ChaosRun.RunSeedsAsync(1, Seeds, new ScenarioOptions { OutboxEngine = new LiteDbOutboxEngine() }, parallelism: 4);
        output.WriteLine(report.Table());
        output.WriteLine($"{Seeds} scenarios on LiteDB outboxes in {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(Seeds, report.Scenarios);
        Assert.Equal(["litedb"], report.OutboxEngines);
        Assert.True(report.ViolationCount == 0, string.Join("\n", report.Reports.Take(3)));
        Assert.All(FaultKinds.All, k => Assert.True(report.Faults[k] > 0, $"{k.Name()} never fired"));
    }

    [Fact]
    public async Task Crash_loops_with_a_litedb_writer_outbox_killed_with_sigkill_have_zero_violations()
    {
        var report = new ChaosReport();
        await Parallel.ForEachAsync(Enumerable.Range(1, 4), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (seed, _) =>
            report.Add(await CrashLoop.RunAsync(seed, RepoPaths.CliDll, outboxEngine: new LiteDbOutboxEngine())));
        output.WriteLine(report.Table());
        Assert.Equal(4, report.CrashLoops);
        Assert.Equal(["litedb"], report.OutboxEngines);
        Assert.True(report.Kills >= 12, $"only {report.Kills} kills");
        Assert.True(report.ViolationCount == 0, string.Join("\n", report.Reports.Take(3)));
    }
}
