using System.CommandLine;
using System.Text.Json;
using ShareRpc.Cli.Bench;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc bench all | wire | storage | naive | durable | dedupe | recovery | replay | fanout | memory | producer | append</c>:
/// measurements on loopback, each figure next to a baseline from the same run.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Measure on loopback; every figure comes with the command that made it.");

        var seconds = new Option<double>("--seconds") { Description = "Measured seconds per case (after a warm-up of a quarter of that).", DefaultValueFactory = _ => 5 };
        var size = new Option<int>("--message-bytes") { Description = "Payload bytes per message.", DefaultValueFactory = _ => 1024 };
        var callers = new Option<int>("--callers") { Description = "Concurrent unary callers.", DefaultValueFactory = _ => 16 };
        var tls = new Option<bool>("--tls") { Description = "Measure over TLS (self-signed) instead of h2c." };
        var output = new Option<FileInfo?>("--out") { Description = "Write the results as JSON to this file." };
        var wire = new Command("wire", "Raw gRPC wire: duplex messages/s (server echoes each, flushing once per read batch) and unary calls/s.")
        {
            seconds, size, callers, tls, output,
        };
        wire.SetAction(async (parse, ct) =>
        {
            var result = await WireBenchmark.RunAsync(
                TimeSpan.FromSeconds(parse.GetValue(seconds)),
                parse.GetValue(size),
                parse.GetValue(callers),
                parse.GetValue(tls),
                Console.Out,
                ct);
            if (parse.GetValue(output) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }), ct);
            }

            return 0;
        });
        bench.Subcommands.Add(wire);

        var ops = new Option<int>("--ops") { Description = "Pending ops in the outbox before the restart.", DefaultValueFactory = _ => 200_000 };
        var valueBytes = new Option<int>("--value-bytes") { Description = "Value bytes per op.", DefaultValueFactory = _ => 1024 };
        var replayOut = new Option<FileInfo?>("--out") { Description = "Write the results as JSON to this file." };
        var replay = new Command("replay", "Pending ops replayed from the outbox after a restart: time, duplicates, client peak RSS vs a 1k-op baseline.")
        {
            ops, valueBytes, replayOut,
        };
        replay.SetAction(async (parse, ct) =>
        {
            var result = await ReplayBenchmark.RunAsync(parse.GetValue(ops), parse.GetValue(valueBytes), Console.Out, ct);
            Console.WriteLine($"  peak RSS ratio, {result.Backlog.Ops:N0} ops vs {result.Baseline.Ops:N0}: {result.PeakRssRatio:0.00}x");
            if (parse.GetValue(replayOut) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }), ct);
            }

            return result.Backlog.DuplicatesApplied == 0 ? 0 : 1;
        });
        bench.Subcommands.Add(replay);
        AddParts(bench);
        return bench;
    }

    private static Option<FileInfo?> OutOption() => new("--out") { Description = "Write the results as JSON to this file." };

    private static async Task WriteJsonAsync<T>(FileInfo? file, T result, CancellationToken ct)
    {
        if (file is not null)
        {
            await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(result, BenchSupport.Json), ct);
        }
    }

    private static void AddParts(Command bench)
    {
        // all
        var quick = new Option<bool>("--quick") { Description = "Small sizes: the whole run finishes in under a minute." };
        var allOut = OutOption();
        var markdown = new Option<FileInfo?>("--markdown") { Description = "Write the markdown table to this file." };
        var dedupe10M = new Option<bool>("--dedupe-10m") { Description = "Also measure dedupe with 10M ops in the log (adds minutes and ~12 GB of disk)." };
        var memory10M = new Option<bool>("--memory-10m") { Description = "Also measure client RSS with 10M pending ops (adds minutes and ~12 GB of disk)." };
        var allPg = new Option<string?>("--pg") { Description = "PostgreSQL for the durable_pg part (connection string; the database must exist). Default: a throwaway cluster (initdb in a temp dir, fsync on)." };
        var all = new Command("all", "Every part in one run: raw wire, storage, naive baseline, durable (SQLite and PostgreSQL), dedupe, recovery, fan-out, client memory; JSON plus a markdown table.")
        {
            quick, allOut, markdown, dedupe10M, memory10M, allPg,
        };
        all.SetAction(async (parse, ct) =>
        {
            var settings = AllBenchmark.Settings.For(parse.GetValue(quick), parse.GetValue(dedupe10M), parse.GetValue(memory10M));
            var command = "sharerpc bench all" + (parse.GetValue(quick) ? " --quick" : "") + (parse.GetValue(dedupe10M) ? " --dedupe-10m" : "") + (parse.GetValue(memory10M) ? " --memory-10m" : "");
            var result = await AllBenchmark.RunAsync(settings, command, Console.Out, ct, parse.GetValue(allPg));
            var md = AllBenchmark.Markdown(result);
            Console.WriteLine();
            Console.WriteLine(md);
            if (parse.GetValue(allOut) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, result.ToJsonString(BenchSupport.Json), ct);
            }

            if (parse.GetValue(markdown) is { } mdFile)
            {
                await File.WriteAllTextAsync(mdFile.FullName, md, ct);
            }

            return result["duplicates_applied"]!.GetValue<long>() == 0 ? 0 : 1;
        });
        bench.Subcommands.Add(all);

        // storage
        var storageSeconds = new Option<double>("--seconds") { Description = "Measured seconds per case.", DefaultValueFactory = _ => 3 };
        var storageOut = OutOption();
        var storage = new Command("storage", "Storage ceiling: batched SQLite inserts (WAL, FULL), 1 KiB rows, 256 and 512 per transaction.") { storageSeconds, storageOut };
        storage.SetAction(async (parse, ct) =>
        {
            await WriteJsonAsync(parse.GetValue(storageOut), await StorageBenchmark.RunAsync(TimeSpan.FromSeconds(parse.GetValue(storageSeconds)), 1024, Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(storage);

        // naive
        var naiveSeconds = new Option<double>("--seconds") { Description = "Measured seconds per case.", DefaultValueFactory = _ => 5 };
        var naiveCallers = new Option<int>("--callers") { Description = "Concurrent callers of the second case.", DefaultValueFactory = _ => 16 };
        var naiveOut = OutOption();
        var naive = new Command("naive", "Naive baseline: one unary call per op, the server commits each op (SQLite FULL).") { naiveSeconds, naiveCallers, naiveOut };
        naive.SetAction(async (parse, ct) =>
        {
            await WriteJsonAsync(parse.GetValue(naiveOut), await NaiveBenchmark.RunAsync(TimeSpan.FromSeconds(parse.GetValue(naiveSeconds)), 1024, parse.GetValue(naiveCallers), Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(naive);

        // durable
        var durableOps = new Option<long>("--ops") { Description = "Ops of the saturation run.", DefaultValueFactory = _ => 500_000 };
        var rates = new Option<int[]>("--rate") { Description = "Offered loads (ops/s) of the open-loop latency runs.", DefaultValueFactory = _ => [1_000, 10_000], AllowMultipleArgumentsPerToken = true };
        var loadSeconds = new Option<double>("--seconds") { Description = "Seconds per offered load.", DefaultValueFactory = _ => 10 };
        var durableOut = OutOption();
        var linger = new Option<int?>("--linger-ms") { Description = "Client LingerMs to measure (default: the SDK's)." };
        var inFlight = new Option<int?>("--max-in-flight") { Description = "Client MaxInFlightBatches to measure (default: the SDK's)." };
        var durablePg = new Option<string?>("--pg") { Description = "Measure the server on this PostgreSQL database instead of SQLite (connection string)." };
        var durableEngine = OutboxEngineOption.Create();
        var durable = new Command("durable", "ShareRpc durable end to end (server in a child process): saturation ops/s, enqueue→ack latency at fixed loads, where the time goes.") { durableOps, rates, loadSeconds, durableOut, linger, inFlight, durablePg, durableEngine };
        durable.SetAction(async (parse, ct) =>
        {
            DurableBenchmark.Engine = OutboxEngineOption.Engine(parse.GetValue(durableEngine));
            DurableBenchmark.LingerMs = parse.GetValue(linger);
            DurableBenchmark.MaxInFlightBatches = parse.GetValue(inFlight);
            await WriteJsonAsync(parse.GetValue(durableOut), await DurableBenchmark.RunAsync(parse.GetValue(durableOps), parse.GetValue(rates)!, TimeSpan.FromSeconds(parse.GetValue(loadSeconds)), 1024, Console.Out, ct, parse.GetValue(durablePg)), ct);
            return 0;
        });
        bench.Subcommands.Add(durable);

        // dedupe
        var sizes = new Option<long[]>("--preload") { Description = "Ops already in the log, one run each (the first is the baseline).", DefaultValueFactory = _ => [0, 1_000_000], AllowMultipleArgumentsPerToken = true };
        var dedupeOps = new Option<long>("--ops") { Description = "Durable ops measured per run.", DefaultValueFactory = _ => 200_000 };
        var dedupeOut = OutOption();
        var dedupe = new Command("dedupe", "Durable ops/s with 0, 1M (or --preload N …) ops already in the server's log.") { sizes, dedupeOps, dedupeOut };
        dedupe.SetAction(async (parse, ct) =>
        {
            await WriteJsonAsync(parse.GetValue(dedupeOut), await ScaleBenchmarks.DedupeAsync(parse.GetValue(sizes)!, parse.GetValue(dedupeOps), 1024, Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(dedupe);

        // recovery
        var recoveryOps = new Option<long>("--ops") { Description = "Unacked ops when the client is killed.", DefaultValueFactory = _ => 1_000_000 };
        var recoveryOut = OutOption();
        var recovery = new Command("recovery", "A client SIGKILLed with N unacked ops, restarted: seconds until all acked, duplicates applied.") { recoveryOps, recoveryOut };
        recovery.SetAction(async (parse, ct) =>
        {
            var r = await ScaleBenchmarks.RecoveryAsync(parse.GetValue(recoveryOps), 1024, Console.Out, ct);
            await WriteJsonAsync(parse.GetValue(recoveryOut), r, ct);
            return r.DuplicatesApplied == 0 ? 0 : 1;
        });
        bench.Subcommands.Add(recovery);

        // fanout
        var fanoutOps = new Option<long>("--ops") { Description = "Ops in the share, read by every subscriber.", DefaultValueFactory = _ => 50_000 };
        var subscribers = new Option<int[]>("--subscribers") { Description = "Subscriber counts.", DefaultValueFactory = _ => [1, 10, 100], AllowMultipleArgumentsPerToken = true };
        var fanoutOut = OutOption();
        var fanout = new Command("fanout", "Subscribe fan-out: delivered ops/s with 1, 10, 100 subscribers on one share.") { fanoutOps, subscribers, fanoutOut };
        fanout.SetAction(async (parse, ct) =>
        {
            await WriteJsonAsync(parse.GetValue(fanoutOut), await ScaleBenchmarks.FanoutAsync(parse.GetValue(fanoutOps), parse.GetValue(subscribers)!, 1024, Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(fanout);

        // memory
        var pending = new Option<long[]>("--pending") { Description = "Pending op counts, one client process each.", DefaultValueFactory = _ => [1_000_000], AllowMultipleArgumentsPerToken = true };
        var memoryOut = OutOption();
        var memory = new Command("memory", "Client peak RSS (VmHWM) holding N pending ops.") { pending, memoryOut };
        memory.SetAction(async (parse, ct) =>
        {
            await WriteJsonAsync(parse.GetValue(memoryOut), await ScaleBenchmarks.MemoryAsync(parse.GetValue(pending)!, 1024, Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(memory);

        // producer, append (issue 14)
        var producerSeconds = new Option<double>("--seconds") { Description = "Measured seconds of the sequential producer (and of the 1-row commit baseline).", DefaultValueFactory = _ => 10 };
        var producerLinger = new Option<int?>("--linger-ms") { Description = "Client Linger to measure (default: the SDK's)." };
        var producerOut = OutOption();
        var producer = new Command("producer", "One task awaiting each PutAsync: acked ops/s and ops per batch, against the outbox's 1-row commit rate.") { producerSeconds, producerLinger, producerOut };
        producer.SetAction(async (parse, ct) =>
        {
            DurableBenchmark.LingerMs = parse.GetValue(producerLinger);
            await WriteJsonAsync(parse.GetValue(producerOut), await ProducerBenchmarks.ProducerAsync(TimeSpan.FromSeconds(parse.GetValue(producerSeconds)), 1024, Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(producer);

        var appendOps = new Option<long>("--ops") { Description = "Put lines in the input file.", DefaultValueFactory = _ => 1_000_000 };
        var appendOut = OutOption();
        var append = new Command("append", "sharerpc append --file of N puts as a child process: ops/s from start to every ack.") { appendOps, appendOut };
        append.SetAction(async (parse, ct) =>
        {
            await WriteJsonAsync(parse.GetValue(appendOut), await ProducerBenchmarks.AppendAsync(parse.GetValue(appendOps), 1024, Console.Out, ct), ct);
            return 0;
        });
        bench.Subcommands.Add(append);

        // Hidden children.
        var data = new Option<DirectoryInfo>("--data") { Required = true };
        var server = new Command("server", "Share server with timing spans (child of the benchmarks).") { Hidden = true };
        var serverPg = new Option<string?>("--pg");
        server.Options.Add(data);
        server.Options.Add(serverPg);
        server.SetAction((parse, ct) => BenchServer.RunAsync(parse.GetValue(data)!.FullName, parse.GetValue(serverPg), ct));
        bench.Subcommands.Add(server);

        var holdOutbox = new Option<string>("--outbox") { Required = true };
        var holdRef = new Option<string>("--ref") { Required = true };
        var holdOps = new Option<long>("--ops") { Required = true };
        var holdValue = new Option<int>("--value-bytes") { DefaultValueFactory = _ => 1024 };
        var hold = new Option<string>("--hold") { DefaultValueFactory = _ => "send" };
        var clientHold = new Command("client-hold", "Enqueue N ops with the sender held, print, wait to be killed (child of the benchmarks).") { Hidden = true };
        clientHold.Options.Add(holdOutbox);
        clientHold.Options.Add(holdRef);
        clientHold.Options.Add(holdOps);
        clientHold.Options.Add(holdValue);
        clientHold.Options.Add(hold);
        clientHold.SetAction((parse, ct) => ScaleBenchmarks.ClientHoldAsync(parse.GetValue(holdOutbox)!, parse.GetValue(holdRef)!, parse.GetValue(holdOps), parse.GetValue(holdValue), parse.GetValue(hold)!, ct));
        bench.Subcommands.Add(clientHold);
    }
}
