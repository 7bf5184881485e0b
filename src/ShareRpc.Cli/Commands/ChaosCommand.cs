using System.CommandLine;
using System.Globalization;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.Postgres;
using ShareRpc.Chaos.Scenarios;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc chaos</c>: seeded fault scenarios against an in-process server over the real wire, real-process
/// crash loops, and the canary (docs/chaos.md), on the embedded SQLite store (default) or on PostgreSQL
/// (<c>--store postgres [--pg CONNSTRING]</c>; without --pg a throwaway cluster). Exit 0 only with zero violations;
/// <c>--canary</c> exits 3 when the checker catches the deliberately broken server (anything else is a failure of the harness).
/// </summary>
internal static class ChaosCommand
{
    public const int CanaryCaught = 3;

    public static Command Create()
    {
        var seeds = new Option<int>("--seeds") { Description = "Seeded scenarios to run.", DefaultValueFactory = _ => 100 };
        var seedStart = new Option<int>("--seed-start") { Description = "First seed (a violation prints the seed that reproduces it).", DefaultValueFactory = _ => 1 };
        var crashLoops = new Option<int>("--crash-loops") { Description = "Crash-loop iterations (real processes, SIGKILL) after the scenarios.", DefaultValueFactory = _ => 0 };
        var canary = new Option<bool>("--canary") { Description = "Run the deliberately broken server (acks before commit); exit 3 when the checker catches it." };
        var parallel = new Option<int>("--parallel") { Description = "Scenarios run at a time.", DefaultValueFactory = _ => Math.Clamp(Environment.ProcessorCount * 2, 2, 8) };
        var faults = new Option<string>("--faults") { Description = "Fault kinds to inject, comma-separated (default all): " + string.Join(", ", FaultKinds.All.Select(k => k.Name())), DefaultValueFactory = _ => "all" };
        var rate = new Option<double>("--fault-rate") { Description = "Chance that a frame / commit / ack gets a fault.", DefaultValueFactory = _ => 0.08 };
        var shares = new Option<int>("--shares") { Description = "Most shares per scenario.", DefaultValueFactory = _ => 2 };
        var producers = new Option<int>("--producers") { Description = "Most producers per share.", DefaultValueFactory = _ => 3 };
        var ops = new Option<int>("--ops") { Description = "Most ops per producer.", DefaultValueFactory = _ => 16 };
        var verbose = new Option<bool>("--verbose") { Description = "Print one line per scenario." };
        var store = new Option<string>("--store") { Description = "The servers' store: sqlite (embedded) or postgres (a schema per scenario, a database per crash loop, each dropped after).", DefaultValueFactory = _ => "sqlite" };
        store.AcceptOnlyFromAmong("sqlite", "postgres");
        var pg = new Option<string?>("--pg") { Description = "PostgreSQL connection string (with --store postgres; its user may CREATE DATABASE for crash loops). Default: a throwaway cluster (initdb, loopback, fsync off), stopped at the end." };
        var engine = OutboxEngineOption.Create();
        var command = new Command("chaos", "Failure-injection harness: seeded scenarios, crash loops, canary; prints a table, exits 0 only with zero violations.")
        {
            seeds, seedStart, crashLoops, canary, parallel, faults, rate, shares, producers, ops, verbose, store, pg, engine,
        };
        command.Subcommands.Add(Writer());
        command.SetAction(async (parse, ct) =>
        {
            var postgres = parse.GetValue(store) == "postgres";
            var connectionString = parse.GetValue(pg);
            if (!postgres && connectionString is not null)
            {
                Console.Error.WriteLine("chaos: --pg is only used with --store postgres.");
                return 2;
            }

            ThrowawayPostgres? throwaway = null;
            try
            {
                if (postgres && string.IsNullOrWhiteSpace(connectionString))
                {
                    Console.WriteLine("postgres: starting a throwaway cluster (initdb in a temp directory, 127.0.0.1 only, fsync off: the harness kills ShareRpc servers, never the database)");
                    throwaway = await ThrowawayPostgres.StartAsync(fsync: false, ct: ct);
                    connectionString = throwaway.ConnectionString();
                    Console.WriteLine($"postgres: throwaway cluster on 127.0.0.1:{throwaway.Port} ({throwaway.RootDirectory}), stopped at the end");
                }
                else if (postgres)
                {
                    Console.WriteLine($"postgres: {ChaosPostgres.Describe(connectionString!)} (a schema per scenario, a database per crash loop, each dropped after)");
                }

                var options = new ScenarioOptions
                {
                    Faults = FaultMix.Parse(parse.GetValue(faults), parse.GetValue(rate)),
                    Workload = new WorkloadOptions
                    {
                        MaxShares = Math.Max(1, parse.GetValue(shares)),
                        MaxProducers = Math.Max(1, parse.GetValue(producers)),
                        MaxOpsPerProducer = Math.Max(4, parse.GetValue(ops)),
                    },
                    PostgresConnectionString = postgres ? connectionString : null,
                    OutboxEngine = OutboxEngineOption.Engine(parse.GetValue(engine)),
                };
                var p = Math.Max(1, parse.GetValue(parallel));
                var beVerbose = parse.GetValue(verbose);
                if (parse.GetValue(canary))
                {
                    return await RunCanaryAsync(options, parse.GetValue(seedStart), Math.Max(1, parse.GetValue(seeds)), p, ct);
                }

                var report = new ChaosReport();
                await ChaosRun.RunSeedsAsync(parse.GetValue(seedStart), parse.GetValue(seeds), options, p, report, r =>
                {
                    if (beVerbose || r.Violations.Count > 0 || r.ServerErrors.Count > 0)
                    {
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seed {r.Seed}: {r.Ops} ops, {r.Faults.Values.Sum()} faults, {r.Violations.Count} violations, {r.Duration.TotalMilliseconds:0} ms{(r.ServerErrors.Count > 0 ? $", {r.ServerErrors.Count} server errors" : "")}"));
                    }
                }, ct);
                var loops = parse.GetValue(crashLoops);
                if (loops > 0)
                {
                    var cli = typeof(ChaosCommand).Assembly.Location;
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    await Parallel.ForEachAsync(Enumerable.Range(parse.GetValue(seedStart), loops), new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = ct }, async (seed, _) =>
                    {
                        var r = await CrashLoop.RunAsync(seed, cli, postgres: options.PostgresConnectionString, outboxEngine: options.OutboxEngine);
                        report.Add(r);
                        if (beVerbose || r.Violations.Count > 0)
                        {
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"crash loop {seed}: {r.Kills} kills, {r.Violations.Count} violations, {r.Duration.TotalSeconds:0.0} s"));
                        }
                    });
                    report.Elapsed += clock.Elapsed;
                }

                foreach (var text in report.Reports.Take(3))
                {
                    Console.WriteLine(text);
                }

                Console.WriteLine(report.Table());
                return report.ViolationCount == 0 ? 0 : 1;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Console.Error.WriteLine("chaos: harness failure: " + e);
                return 2;
            }
            finally
            {
                if (throwaway is not null)
                {
                    await throwaway.DisposeAsync();
                }
            }
        });
        return command;
    }

    private static async Task<int> RunCanaryAsync(ScenarioOptions options, int seedStart, int maxSeeds, int parallel, CancellationToken ct)
    {
        options.Canary = true;
        var report = new ChaosReport();
        ScenarioResult? caught = null;
        // Seeds in small rounds until one is caught; harness failures ("stuck") do not count as a catch.
        for (var seed = seedStart; seed < seedStart + Math.Max(maxSeeds, 20) && caught is null; seed += parallel)
        {
            var round = new List<ScenarioResult>();
            await ChaosRun.RunSeedsAsync(seed, parallel, options, parallel, report, r => { lock (round) { round.Add(r); } }, ct);
            caught = round.Where(r => r.Violations.Any(v => v.Kind != Violation.Stuck)).OrderBy(r => r.Seed).FirstOrDefault();
        }

        if (caught is null)
        {
            Console.WriteLine(report.Table());
            Console.WriteLine("canary NOT caught: the checker missed a server that acks before commit (harness failure)");
            return 1;
        }

        Console.WriteLine(caught.Report);
        Console.WriteLine(report.Table());
        Console.WriteLine($"canary caught at seed {caught.Seed}: {string.Join(", ", caught.Violations.Select(v => v.Kind).Distinct())}");
        return CanaryCaught;
    }

    /// <summary>The crash loop's writer child (hidden).</summary>
    private static Command Writer()
    {
        var sturdyRef = new Option<string>("--ref") { Required = true };
        var outbox = new Option<FileInfo>("--outbox") { Required = true };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
        var ops = new Option<int>("--ops") { DefaultValueFactory = _ => CrashLoop.DefaultOps };
        var engine = OutboxEngineOption.Create();
        var command = new Command("writer", "Crash-loop writer child: enqueue the seed's ops (resuming its outbox), flush, print done.") { sturdyRef, outbox, seed, ops, engine };
        command.Hidden = true;
        command.SetAction(async (parse, ct) =>
            await CrashLoop.RunWriterAsync(parse.GetValue(sturdyRef)!, parse.GetValue(outbox)!.FullName, parse.GetValue(seed), parse.GetValue(ops), Console.Out, OutboxEngineOption.Engine(parse.GetValue(engine))));
        return command;
    }
}
