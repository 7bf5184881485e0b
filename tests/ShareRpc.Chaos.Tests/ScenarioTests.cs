using Grpc.Core;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.Scenarios;
using ShareRpc.Client;
using ShareRpc.Server.Storage;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using Xunit.Abstractions;
using OpOutcome = ShareRpc.Client.Outbox.OpOutcome;

namespace ShareRpc.Chaos.Tests;

/// <summary>CI's chaos budget: 1,000 seeded scenarios and 10 crash loops with zero violations, and the canary caught.</summary>
[Collection(SeededRuns.Name)]
public sealed class ScenarioTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_thousand_seeded_scenarios_with_every_fault_kind_have_zero_violations()
    {
        var report = await ChaosRun.RunSeedsAsync(1, 1000, new ScenarioOptions(), parallelism: 4);
        output.WriteLine(report.Table());
        Assert.Equal(1000, report.Scenarios);
        Assert.True(report.ViolationCount == 0, string.Join("\n", report.Reports.Take(3)));
        Assert.All(FaultKinds.All, k => Assert.True(report.Faults[k] > 0, $"{k.Name()} never fired"));
    }

    [Fact]
    public async Task Ten_crash_loops_of_real_processes_killed_with_sigkill_have_zero_violations()
    {
        var report = new ChaosReport();
        await Parallel.ForEachAsync(Enumerable.Range(1, 10), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (seed, _) =>
            report.Add(await CrashLoop.RunAsync(seed, RepoPaths.CliDll)));
        output.WriteLine(report.Table());
        Assert.Equal(10, report.CrashLoops);
        Assert.True(report.Kills >= 30, $"only {report.Kills} kills");
        Assert.True(report.ViolationCount == 0, string.Join("\n", report.Reports.Take(3)));
    }

    [Fact]
    public async Task The_canary_a_server_that_acks_before_commit_is_caught_as_lost_ops()
    {
        var options = new ScenarioOptions { Canary = true };
        ScenarioResult? caught = null;
        for (var seed = 1; seed <= 12 && caught is null; seed++)
        {
            var r = await ScenarioRunner.RunAsync(seed, options);
            if (r.Violations.Any(v => v.Kind == Violation.Lost))
            {
                caught = r;
            }
        }

        Assert.NotNull(caught);
        output.WriteLine(caught.Report);
        Assert.Contains($"seed {caught.Seed}", caught.Report);
        Assert.Contains("fault schedule:", caught.Report);
        Assert.Contains("history slice", caught.Report);
    }

    [Fact]
    public async Task Cli_chaos_canary_exits_3_and_a_clean_run_exits_0_with_the_table()
    {
        await using var canary = TestProcess.Start(RepoPaths.CliDll, "chaos", "--canary", "--parallel", "2");
        Assert.Equal(3, await canary.WaitForExitAsync(TimeSpan.FromSeconds(120)));
        Assert.Contains(canary.Lines, l => l.StartsWith("canary caught at seed", StringComparison.Ordinal));

        await using var clean = TestProcess.Start(RepoPaths.CliDll, "chaos", "--seeds", "8", "--seed-start", "500", "--parallel", "2");
        Assert.Equal(0, await clean.WaitForExitAsync(TimeSpan.FromSeconds(120)));
        Assert.Contains(clean.Lines, l => l.Trim().StartsWith("scenarios", StringComparison.Ordinal) && l.Trim().EndsWith(" 8", StringComparison.Ordinal));
        Assert.Contains(clean.Lines, l => l.Trim() == "violations");
    }

    [Fact]
    public void The_same_seed_gives_the_same_workload_and_fault_schedule()
    {
        var o = new ScenarioOptions();
        for (var seed = 1; seed < 50; seed++)
        {
            var (w1, s1) = ScenarioRunner.Plan(seed, o);
            var (w2, s2) = ScenarioRunner.Plan(seed, o);
            Assert.Equal(w1.ToString(), w2.ToString());
            Assert.Equal(s1.ToString(), s2.ToString());
            Assert.Equal(w1.Producers.SelectMany(p => p.Ops).Select(x => x.ToString()), w2.Producers.SelectMany(p => p.Ops).Select(x => x.ToString()));
        }

        Assert.NotEqual(ScenarioRunner.Plan(1, o).Schedule.ToString(), ScenarioRunner.Plan(2, o).Schedule.ToString());
    }

    [Fact]
    public void The_checker_finds_each_kind_of_anomaly()
    {
        static LogEntry E(ulong cursor, string id, string producer, ulong seq) =>
            new(cursor, id, producer, seq, OpKind.Put, "c", "k" + cursor, [1], "", null, [], 1, DateTimeOffset.UnixEpoch);

        var o = new Observation();
        o.Shares.Add(new ObservedShare("s", "S", [E(1, "a", "P", 1), E(2, "b", "P", 3), E(3, "a", "P", 2), E(4, "x", "Q", 1), E(5, "q", "Q", 2)], 5, []));
        o.Producers.Add(new ObservedProducer("p", "S", "P", null, null));
        o.Producers.Add(new ObservedProducer("q", "S", "Q", "PermissionDenied (revoked)", 4));
        o.Ops.Add(new ObservedOp("a", "p", 1, true, new OpOutcome("a", OpStatus.Applied, 1, 1, RejectReason.Unspecified, ""), true));
        o.Ops.Add(new ObservedOp("b", "p", 3, true, new OpOutcome("b", OpStatus.Applied, 2, 1, RejectReason.Unspecified, ""), true));
        o.Ops.Add(new ObservedOp("c", "p", 4, true, new OpOutcome("c", OpStatus.Applied, 9, 1, RejectReason.Unspecified, ""), true));
        o.Ops.Add(new ObservedOp("q", "q", 2, true, null, true));
        o.Subscribers.Add(new ObservedSubscriber("r", "S", null, null, [(1, "a"), (3, "a")], true));
        o.Subscribers.Add(new ObservedSubscriber("x", "S", null, null, [(1, "a"), (2, "b"), (3, "a")], false, FencedAfterCursor: 2, EndedWith: null));
        var violations = HistoryChecker.Check(o);
        var kinds = violations.Select(v => v.Kind).ToHashSet();
        Assert.Equal(2, violations.Count(v => v.Kind == Violation.Fence && v.Actors.Contains("x"))); // op after the fence; stream not ended PERMISSION_DENIED
        Assert.Contains(Violation.Duplicate, kinds); // a twice
        Assert.Contains(Violation.Order, kinds); // seq 3 before seq 2
        Assert.Contains(Violation.Lost, kinds); // c acked at 9, not in the log
        Assert.Contains(Violation.Phantom, kinds); // x never enqueued
        Assert.Contains(Violation.Fence, kinds); // q applied at 5 > 4 after its revoke
        Assert.Contains(Violation.View, kinds); // the subscriber skipped cursor 2
        Assert.Contains(Violation.Snapshot, kinds); // the served snapshot is empty
    }

    /// <summary>Regression (found by the canary): a server that lost acked ops answers OUT_OF_ORDER behind the
    /// client's oldest unacked batch; the sender raised DATA_LOSS but then retried it forever with backoff
    /// instead of stopping as docs/client.md says. Now it stops, keeps the ops and FlushAsync throws.</summary>
    [Fact]
    public async Task A_writer_stops_with_data_loss_when_the_server_lost_ops_it_acked()
    {
        using var dir = new TempDir();
        var history = new History.OpHistory();
        var plan = new ServerFaultPlan(new FaultSchedule([new ScheduledFault("server", "commit", 0, FaultKind.FailBeforeCommit, 0)]), history, canary: true);
        await using var server = await ChaosServer.StartAsync(dir.File("server"), plan.Hooks);
        await using var client = new ShareRpcClient(ScenarioRunner.ClientOptions(dir.File("w.db"), null, 1));
        var created = await client.CreateShareAsync(server.Address, "data-loss");
        plan.Arm();
        var writer = client.OpenWriter(created.SturdyRef);
        var first = await writer.PutAsync("c", "a", new byte[] { 1 });
        Assert.Equal(OpStatus.Applied, (await first.Acked).Status); // acked before its commit, which then failed
        await writer.PutAsync("c", "b", new byte[] { 2 });
        var e = await Assert.ThrowsAsync<ShareRpcCallException>(() => writer.FlushAsync(new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token));
        Assert.Equal(StatusCode.DataLoss, e.StatusCode);
        Assert.Equal(StatusCode.DataLoss, writer.StopError!.StatusCode);
        Assert.Equal(1, (await writer.GetProgressAsync()).PendingOps);
    }
}
