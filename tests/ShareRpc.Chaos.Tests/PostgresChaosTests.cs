using Grpc.Core;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;
using ShareRpc.Chaos.Postgres;
using ShareRpc.Chaos.Scenarios;
using ShareRpc.Client;
using ShareRpc.Server.Postgres;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using Xunit.Abstractions;

namespace ShareRpc.Chaos.Tests;

/// <summary>
/// The harness on the PostgreSQL store (docs/chaos.md, "On PostgreSQL"): seeded scenarios with every fault kind,
/// real-process crash loops on a database, the canary, and the CLI. PostgreSQL comes from
/// <see cref="PostgresTestServer"/> (SHARERPC_TEST_PG, or a throwaway cluster); each test has a database of its own.
/// </summary>
[Collection(SeededRuns.Name)]
public sealed class PostgresChaosTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Seeded_scenarios_on_postgres_with_every_fault_kind_have_zero_violations_and_leave_no_schema()
    {
        var pg = await PostgresTestServer.SharedAsync();
        var cs = await pg.CreateDatabaseAsync("chaos_scenarios");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var report = await ChaosRun.RunSeedsAsync(2001, 160, new ScenarioOptions { PostgresConnectionString = cs }, parallelism: 4);
        output.WriteLine(report.Table());
        output.WriteLine($"160 scenarios on PostgreSQL in {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(160, report.Scenarios);
        Assert.Equal(["postgres"], report.Stores); // every server really ran on PostgresShareStore
        Assert.True(report.ViolationCount == 0, string.Join("\n", report.Reports.Take(3)));
        Assert.All(FaultKinds.All, k => Assert.True(report.Faults[k] > 0, $"{k.Name()} never fired on PostgreSQL"));
        Assert.Empty(await ChaosPostgres.ListSchemasAsync(cs)); // each scenario's schema was dropped
        await pg.DropDatabaseAsync(cs);
    }

    [Fact]
    public async Task Crash_loops_on_postgres_sigkill_the_server_restart_it_on_the_same_database_and_lose_nothing()
    {
        var pg = await PostgresTestServer.SharedAsync();
        var before = await ChaosPostgres.ListDatabasesAsync(pg.ConnectionString);
        var report = new ChaosReport();
        var results = new System.Collections.Concurrent.ConcurrentBag<CrashLoopResult>();
        await Parallel.ForEachAsync(new[] { 1, 2 }, new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (seed, _) =>
        {
            var r = await CrashLoop.RunAsync(seed, RepoPaths.CliDll, postgres: pg.ConnectionString);
            results.Add(r);
            report.Add(r);
        });
        output.WriteLine(report.Table());
        Assert.Equal(2, report.CrashLoops);
        Assert.Equal(["postgres"], report.Stores);
        Assert.True(report.Kills > 0, "no process was killed");
        // Each loop SIGKILLed its server mid-run and restarted it on the same database (then killed it once more at the end).
        Assert.All(results, r => Assert.True(r.ServerRestarts > 0, $"crash loop {r.Seed} never restarted its server"));
        Assert.True(report.ViolationCount == 0, string.Join("\n", report.Reports.Take(3)));
        Assert.Equal(before, await ChaosPostgres.ListDatabasesAsync(pg.ConnectionString)); // each loop's database was dropped
    }

    [Fact]
    public async Task The_canary_on_postgres_a_server_that_acks_before_commit_is_caught_as_lost_ops()
    {
        var pg = await PostgresTestServer.SharedAsync();
        var cs = await pg.CreateDatabaseAsync("chaos_canary");
        var options = new ScenarioOptions { Canary = true, PostgresConnectionString = cs };
        ScenarioResult? caught = null;
        for (var seed = 1; seed <= 12 && caught is null; seed++)
        {
            var r = await ScenarioRunner.RunAsync(seed, options);
            Assert.Equal("postgres", r.Store);
            if (r.Violations.Any(v => v.Kind == Violation.Lost))
            {
                caught = r;
            }
        }

        Assert.NotNull(caught);
        output.WriteLine(caught.Report);
        Assert.Contains($"seed {caught.Seed} (canary) on postgres", caught.Report);
        Assert.Contains("--canary --store postgres", caught.Report);
        Assert.Empty(await ChaosPostgres.ListSchemasAsync(cs));
        await pg.DropDatabaseAsync(cs);
    }

    /// <summary>
    /// Disk full on PostgreSQL is SQLSTATE 53100 thrown before COMMIT: the store does not call it transient (no
    /// rerun), the group rolls back, the unary write fails UNAVAILABLE storage and leaves nothing; a batch that
    /// met it is resent and applied once. The server's schema exists while it runs and is gone after.
    /// </summary>
    [Fact]
    public async Task Disk_full_on_postgres_is_sqlstate_53100_before_commit_nothing_is_applied_and_the_resend_applies_once()
    {
        var pg = await PostgresTestServer.SharedAsync();
        var cs = await pg.CreateDatabaseAsync("chaos_disk_full");
        var history = new OpHistory();
        var schedule = new FaultSchedule([new ScheduledFault("server", "commit", 0, FaultKind.DiskFull, 0), new ScheduledFault("server", "commit", 1, FaultKind.DiskFull, 0)]);
        var plan = new ServerFaultPlan(schedule, history, postgres: true);
        var server = await ChaosServer.StartAsync(_dir.File("server"), plan.Hooks, postgres: cs, schema: ChaosPostgres.SchemaName(53100));
        await using (server)
        {
            Assert.Equal("postgres", server.Store);
            Assert.Equal([server.Schema!], await ChaosPostgres.ListSchemasAsync(cs));
            Assert.False(server.Engine.Store.IsTransient(ServerFaultPlan.PostgresDiskFullException()));
            await using var client = new ShareRpcClient(ScenarioRunner.ClientOptions(_dir.File("w.db"), null, 3));
            var created = await client.CreateShareAsync(server.Address, "disk-full");
            plan.Arm();

            // Commit 0: a unary write.
            var e = await Assert.ThrowsAsync<ShareRpcCallException>(() => client.DelegateAsync(created.SturdyRef, [Right.Read]));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Equal("storage", e.Reason);
            await using (var reader = await server.Engine.Store.BeginReadAsync())
            {
                var share = await reader.GetShareAsync(created.ShareId);
                Assert.Single(await reader.GetCapabilitiesAsync(share!.RowId)); // only the owner: the delegation rolled back
            }

            // Commit 1: a batch of three ops, resent and applied once.
            var writer = client.OpenWriter(created.SturdyRef);
            var pending = new List<PendingOp>();
            for (var i = 0; i < 3; i++)
            {
                pending.Add(await writer.PutAsync("c", "k" + i, new byte[] { (byte)i }));
            }

            await writer.FlushAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            var (log, head, _) = await server.ReadLogAsync(created.ShareId);
            Assert.Equal(pending.Select(p => p.OpId), log.Select(x => x.OpId));
            Assert.Equal(3UL, head);
            Assert.Equal(2, history.FaultsFired[FaultKind.DiskFull]);
            Assert.Equal(0, server.Engine.Committer.Retries); // 53100 is not a race: the group is not rerun
        }

        Assert.Empty(await ChaosPostgres.ListSchemasAsync(cs)); // dropped with the server
        await pg.DropDatabaseAsync(cs);
    }

    [Fact]
    public async Task Cli_chaos_store_postgres_names_the_store_with_pg_and_stops_its_throwaway_cluster_without()
    {
        var pg = await PostgresTestServer.SharedAsync();
        var cs = await pg.CreateDatabaseAsync("chaos_cli");
        await using (var given = TestProcess.Start(RepoPaths.CliDll, "chaos", "--store", "postgres", "--pg", cs, "--seeds", "4", "--seed-start", "900", "--parallel", "2"))
        {
            Assert.Equal(0, await given.WaitForExitAsync(TimeSpan.FromSeconds(120)));
            Assert.Contains(given.Lines, l => l.StartsWith("postgres: ", StringComparison.Ordinal) && l.Contains(ChaosPostgres.Describe(cs), StringComparison.Ordinal));
            Assert.Contains(given.Lines, l => l.Trim().StartsWith("store", StringComparison.Ordinal) && l.Trim().EndsWith(" postgres", StringComparison.Ordinal));
            Assert.Contains(given.Lines, l => l.Trim().StartsWith("scenarios", StringComparison.Ordinal) && l.Trim().EndsWith(" 4", StringComparison.Ordinal));
        }

        Assert.Empty(await ChaosPostgres.ListSchemasAsync(cs));
        await pg.DropDatabaseAsync(cs);

        // Without --pg: a throwaway cluster (fsync off, said so), a crash loop on it, and the cluster gone at the end.
        await using var throwaway = TestProcess.Start(RepoPaths.CliDll, "chaos", "--store", "postgres", "--seeds", "2", "--crash-loops", "1", "--parallel", "2");
        Assert.Equal(0, await throwaway.WaitForExitAsync(TimeSpan.FromSeconds(180)));
        Assert.Contains(throwaway.Lines, l => l.Contains("fsync off", StringComparison.Ordinal));
        var started = throwaway.Lines.Single(l => l.StartsWith("postgres: throwaway cluster on 127.0.0.1:", StringComparison.Ordinal));
        var dir = started[(started.IndexOf('(', StringComparison.Ordinal) + 1)..started.IndexOf(')', StringComparison.Ordinal)];
        Assert.False(Directory.Exists(dir), dir + " left behind");
        Assert.Contains(throwaway.Lines, l => l.Trim().StartsWith("crash loops", StringComparison.Ordinal) && l.Trim().EndsWith(" 1", StringComparison.Ordinal));
        Assert.Contains(throwaway.Lines, l => l.Trim().StartsWith("store", StringComparison.Ordinal) && l.Trim().EndsWith(" postgres", StringComparison.Ordinal));
    }

    [Fact]
    public void Scenario_schema_and_crash_database_names_are_valid_and_fresh()
    {
        var a = ChaosPostgres.SchemaName(7);
        var b = ChaosPostgres.SchemaName(-7);
        Assert.NotEqual(a, ChaosPostgres.SchemaName(7));
        new PostgresStoreOptions { ConnectionString = "Host=x", Schema = a }.Validate();
        new PostgresStoreOptions { ConnectionString = "Host=x", Schema = b }.Validate();
        Assert.StartsWith("chaos_7_", a, StringComparison.Ordinal);
        Assert.StartsWith("chaos_m7_", b, StringComparison.Ordinal);
        Assert.Equal("sqlite", new ScenarioOptions().Store);
        Assert.Null(new ScenarioOptions().PostgresConnectionString); // SQLite stays the default
    }
}
