using System.CommandLine;
using System.Text.Json;
using ShareRpc.Cli.Bench;

namespace ShareRpc.Cli.Commands;

/// <summary><c>sharerpc bench wire</c>: the raw wire ceiling on loopback.</summary>
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
        return bench;
    }
}
