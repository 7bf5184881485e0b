using System.Text;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;
using ShareRpc.Chaos.Scenarios;
using ShareRpc.Client;

namespace ShareRpc.Examples.Guides;

/// <summary>docs/guides/chaos-your-workload.md: the failure-injection harness with your workload shape and your own writer code.</summary>
public static class ChaosWorkload
{
    public static async Task<int> RunAsync(string dir)
    {
        // region scenarios
        // Seeded scenarios with your workload's shape and fault mix: many producers per share,
        // long streams, big batches, revocations, and the faults you care about.
        var options = new ScenarioOptions
        {
            Workload = new WorkloadOptions { MaxProducers = 5, MaxOpsPerProducer = 60, Keys = 2, RevokeRate = 0.5, MaxBatchOps = 64 },
            Faults = new FaultMix { Kinds = [FaultKind.DropResponse, FaultKind.DieAfterCommit, FaultKind.DiskFull], Rate = 0.15 },
        };
        var report = await ChaosRun.RunSeedsAsync(seedStart: 1, seeds: 20, options, parallelism: 2);
        Console.WriteLine(report.Table());
        // endregion

        // region own
        // Your own writer code under the same fault points: a server with fault hooks, a client
        // whose transport drops and resets frames, both drawn from one seeded schedule.
        var seed = 42;
        var history = new OpHistory();
        var schedule = FaultSchedule.Generate(new Random(seed), new FaultMix { Rate = 0.2 }, ["my-writer"], []);
        var plan = new ServerFaultPlan(schedule, history);
        await using var server = await ChaosServer.StartAsync(Path.Combine(dir, "server"), plan.Hooks);
        await using var client = new ShareRpcClient(new()
        {
            OutboxPath = Path.Combine(dir, "my-writer.db"),
            Channel = { DelegatingHandlers = { () => new TransportFaultHandler("my-writer", schedule, history) } },
            InitialBackoff = TimeSpan.FromMilliseconds(10),
            MaxBackoff = TimeSpan.FromMilliseconds(200),
        });
        var sturdyRef = await client.EnsureShareAsync(server.Address, "my-workload");
        var writer = client.OpenWriter(sturdyRef);
        plan.Arm();

        var sent = new List<PendingOp>();
        for (var i = 0; i < 500; i++) // your workload here
            sent.Add(await writer.PutAsync("items", $"k{i % 20}", Encoding.UTF8.GetBytes($"v{i}")));
        await writer.FlushAsync();
        plan.Disarm();

        var (log, head, _) = await server.ReadLogAsync(writer.ShareId);
        var inLog = log.GroupBy(e => e.OpId).ToDictionary(g => g.Key, g => g.Count());
        var lost = sent.Count(p => !inLog.ContainsKey(p.OpId));
        var twice = inLog.Values.Count(n => n > 1);
        var faults = history.FaultsFired.Values.Sum();
        Console.WriteLine($"seed {seed}: {sent.Count} ops, {faults} faults injected, log head {head}: {lost} lost, {twice} applied twice");
        // endregion

        return report.ViolationCount == 0 && lost == 0 && twice == 0 && log.Count == sent.Count ? 0 : 1;
    }
}
