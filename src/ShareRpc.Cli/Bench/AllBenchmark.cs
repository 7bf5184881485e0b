using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ShareRpc.Chaos.Postgres;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// <c>sharerpc bench all</c>: every part in one run on loopback, each figure next to its baseline
/// from the same run, written as JSON (fixed top-level field names) and a markdown table.
/// </summary>
internal static class AllBenchmark
{
    public sealed record Settings(
        bool Quick,
        double WireSeconds,
        double StorageSeconds,
        double NaiveSeconds,
        long DurableOps,
        double LoadSeconds,
        long[] DedupeSizes,
        long DedupeOps,
        long RecoveryOps,
        long FanoutOps,
        long[] MemorySizes,
        double ProducerSeconds,
        long AppendOps)
    {
        public static Settings For(bool quick, bool dedupe10M, bool memory10M) => quick
            ? new Settings(true, 1, 0.75, 1, 30_000, 1.5, [0, 100_000], 20_000, 50_000, 2_000, [100_000], 2, 20_000)
            : new Settings(false, 5, 3, 5, 500_000, 10, dedupe10M ? [0, 1_000_000, 10_000_000] : [0, 1_000_000], 200_000, 1_000_000, 50_000, memory10M ? [1_000_000, 10_000_000] : [1_000_000], 10, 1_000_000);
    }

    public static async Task<JsonObject> RunAsync(Settings settings, string command, TextWriter log, CancellationToken ct, string? postgres = null)
    {
        const int ValueBytes = 1024;
        var total = Stopwatch.StartNew();
        var loadAvg = ReadLoadAvg();
        var started = DateTimeOffset.UtcNow;
        log.WriteLine($"sharerpc bench all{(settings.Quick ? " (quick)" : "")}: {BenchSupport.Machine()}");

        var wire = await WireBenchmark.RunAsync(TimeSpan.FromSeconds(settings.WireSeconds), ValueBytes, 16, false, log, ct);
        var storage = await StorageBenchmark.RunAsync(TimeSpan.FromSeconds(settings.StorageSeconds), ValueBytes, log, ct);
        var naive = await NaiveBenchmark.RunAsync(TimeSpan.FromSeconds(settings.NaiveSeconds), ValueBytes, 16, log, ct);
        var durable = await DurableBenchmark.RunAsync(settings.DurableOps, [1_000, 10_000], TimeSpan.FromSeconds(settings.LoadSeconds), ValueBytes, log, ct);
        var durablePg = await DurablePgAsync(settings, postgres, ValueBytes, log, ct);
        var dedupe = await ScaleBenchmarks.DedupeAsync(settings.DedupeSizes, settings.DedupeOps, ValueBytes, log, ct);
        var recovery = await ScaleBenchmarks.RecoveryAsync(settings.RecoveryOps, ValueBytes, log, ct);
        var fanout = await ScaleBenchmarks.FanoutAsync(settings.FanoutOps, [1, 10, 100], ValueBytes, log, ct);
        var memory = await ScaleBenchmarks.MemoryAsync(settings.MemorySizes, ValueBytes, log, ct);
        var producer = await ProducerBenchmarks.ProducerAsync(TimeSpan.FromSeconds(settings.ProducerSeconds), ValueBytes, log, ct);
        var append = await ProducerBenchmarks.AppendAsync(settings.AppendOps, ValueBytes, log, ct);
        var wall = total.Elapsed.TotalSeconds;

        var at1k = durable.Loads.First(l => l.OfferedOpsPerSecond == 1_000);
        var at10k = durable.Loads.First(l => l.OfferedOpsPerSecond == 10_000);
        var durableRate = durable.Saturation.OpsPerSecond;
        var largestMemory = memory.Cases[^1];
        var targets = new List<Target>
        {
            new("durable ops/s ≥ 50k", $"{durableRate:N0}", durableRate >= 50_000),
            new("durable ≥ 0.25× raw wire", $"{durableRate / wire.DuplexMessagesPerSecond:0.00}×", durableRate >= 0.25 * wire.DuplexMessagesPerSecond),
            new("durable ≥ 10× naive (sequential caller)", $"{durableRate / naive.Sequential.OpsPerSecond:0.0}×", durableRate >= 10 * naive.Sequential.OpsPerSecond),
            new("p99 ≤ 5 ms at 1k ops/s", $"{at1k.P99Ms:0.00} ms", at1k.P99Ms <= 5),
            new($"dedupe@{Size(settings.DedupeSizes[^1])} ≥ 0.8× empty", $"{dedupe.Ratio:0.00}×", dedupe.Ratio >= 0.8, settings.DedupeSizes[^1] < 10_000_000 ? "10M needs --dedupe-10m" : null),
            new($"{Size(settings.RecoveryOps)}-op recovery ≤ 30 s", $"{recovery.RecoverySeconds:0.0} s", recovery.RecoverySeconds <= 30, settings.RecoveryOps < 1_000_000 ? "target is for 1M" : null),
            new("duplicates applied = 0", $"{recovery.DuplicatesApplied}", recovery.DuplicatesApplied == 0),
            new("sequential producer ≥ 0.8× the 1-row commit rate", $"{producer.RatioToCommit1Row:0.00}×", producer.RatioToCommit1Row >= 0.8),
            new("sequential producer ≥ 8 ops per batch", $"{producer.OpsPerBatch:0.0}", producer.OpsPerBatch >= 8),
            new($"CLI append of {Size(settings.AppendOps)} ≥ 0.7× durable saturation", $"{append.OpsPerSecond / durableRate:0.00}×", append.OpsPerSecond >= 0.7 * durableRate, settings.AppendOps < 1_000_000 ? "target is for 1M" : null),
            new($"client RSS ≤ 200 MiB with {Size(largestMemory.PendingOps)} pending", $"{largestMemory.PeakRssMib:0} MiB", largestMemory.PeakRssMib <= 200, largestMemory.PendingOps < 10_000_000 ? "target is for 10M (--memory-10m)" : null),
        };

        var result = new JsonObject
        {
            ["raw_wire_ops_per_s"] = wire.DuplexMessagesPerSecond,
            ["storage_rows_per_s"] = storage.BestRowsPerSecond,
            ["naive_ops_per_s"] = naive.Sequential.OpsPerSecond,
            ["naive_16_callers_ops_per_s"] = naive.Concurrent.OpsPerSecond,
            ["durable_ops_per_s"] = durableRate,
            ["durable_acks_observed_ops_per_s"] = durable.SaturationAwaitingAcks?.OpsPerSecond,
            ["durable_pg_ops_per_s"] = durablePg?.Saturation.OpsPerSecond,
            ["durable_pg_p99_ms"] = durablePg?.Loads.FirstOrDefault()?.P99Ms,
            ["ratio_durable_pg_over_sqlite"] = durablePg is null ? null : BenchSupport.R(durablePg.Saturation.OpsPerSecond / durableRate, 3),
            ["durable_p50_ms"] = at1k.P50Ms,
            ["durable_p99_ms"] = at1k.P99Ms,
            ["durable_p999_ms"] = at1k.P999Ms,
            ["durable_10k_p50_ms"] = at10k.P50Ms,
            ["durable_10k_p99_ms"] = at10k.P99Ms,
            ["durable_10k_p999_ms"] = at10k.P999Ms,
            ["dedupe_ratio"] = dedupe.Ratio,
            ["dedupe_largest_preloaded"] = settings.DedupeSizes[^1],
            ["recovery_ops"] = recovery.Ops,
            ["recovery_s"] = recovery.RecoverySeconds,
            ["duplicates_applied"] = recovery.DuplicatesApplied,
            ["fanout_delivered_ops_per_s"] = new JsonObject(fanout.Cases.Select(c => KeyValuePair.Create(c.Subscribers.ToString(CultureInfo.InvariantCulture), (JsonNode?)c.DeliveredOpsPerSecond))),
            ["client_peak_rss_mib"] = new JsonObject(memory.Cases.Select(c => KeyValuePair.Create(c.PendingOps.ToString(CultureInfo.InvariantCulture), (JsonNode?)c.PeakRssMib))),
            ["producer_ops_per_s"] = producer.ProducerOpsPerSecond,
            ["producer_ops_per_batch"] = producer.OpsPerBatch,
            ["commit_1row_per_s"] = producer.Commit1RowPerSecond,
            ["commit_1row_p99_ms"] = producer.Commit1RowP99Ms,
            ["ratio_producer_over_commit_1row"] = producer.RatioToCommit1Row,
            ["cli_append_ops"] = append.Ops,
            ["cli_append_ops_per_s"] = append.OpsPerSecond,
            ["ratio_cli_append_over_durable"] = BenchSupport.R(append.OpsPerSecond / durableRate, 3),
            ["ratio_durable_over_raw"] = BenchSupport.R(durableRate / wire.DuplexMessagesPerSecond, 3),
            ["ratio_durable_over_naive"] = BenchSupport.R(durableRate / naive.Sequential.OpsPerSecond, 2),
            ["ratio_durable_over_naive_16"] = BenchSupport.R(durableRate / naive.Concurrent.OpsPerSecond, 2),
            ["ratio_durable_over_storage"] = BenchSupport.R(durableRate / storage.BestRowsPerSecond, 3),
            ["quick"] = settings.Quick,
            ["command"] = command,
            ["machine"] = BenchSupport.Machine(),
            ["nproc"] = Environment.ProcessorCount,
            ["dotnet"] = Environment.Version.ToString(),
            ["started_at"] = started.ToString("O", CultureInfo.InvariantCulture),
            ["loadavg_at_start"] = loadAvg,
            ["loadavg_at_end"] = ReadLoadAvg(),
            ["wall_s"] = BenchSupport.R(wall, 1),
            ["targets"] = JsonSerializer.SerializeToNode(targets, BenchSupport.Json),
            ["details"] = new JsonObject
            {
                ["wire"] = JsonSerializer.SerializeToNode(wire, BenchSupport.Json),
                ["storage"] = JsonSerializer.SerializeToNode(storage, BenchSupport.Json),
                ["naive"] = JsonSerializer.SerializeToNode(naive, BenchSupport.Json),
                ["durable"] = JsonSerializer.SerializeToNode(durable, BenchSupport.Json),
                ["durable_pg"] = durablePg is null ? null : JsonSerializer.SerializeToNode(durablePg, BenchSupport.Json),
                ["dedupe"] = JsonSerializer.SerializeToNode(dedupe, BenchSupport.Json),
                ["recovery"] = JsonSerializer.SerializeToNode(recovery, BenchSupport.Json),
                ["fanout"] = JsonSerializer.SerializeToNode(fanout, BenchSupport.Json),
                ["memory"] = JsonSerializer.SerializeToNode(memory, BenchSupport.Json),
                ["producer"] = JsonSerializer.SerializeToNode(producer, BenchSupport.Json),
                ["append"] = JsonSerializer.SerializeToNode(append, BenchSupport.Json),
            },
        };
        log.WriteLine($"done in {wall:0.0} s");
        return result;
    }

    /// <summary>
    /// The durable path with the server on PostgreSQL: the given database, or a throwaway cluster
    /// (fsync on) when PostgreSQL is installed; null when neither is available.
    /// </summary>
    private static async Task<DurableBenchmark.Result?> DurablePgAsync(Settings settings, string? postgres, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var ops = Math.Max(settings.DurableOps / 5, 10_000);
        var load = TimeSpan.FromSeconds(settings.LoadSeconds);
        if (postgres is not null) return await DurableBenchmark.RunAsync(ops, [1_000], load, valueBytes, log, ct, postgres);
        if (ThrowawayPostgres.FindBinDirectory() is null)
        {
            log.WriteLine("durable on PostgreSQL: skipped (no PostgreSQL installed; pass --pg CONNSTRING)");
            return null;
        }

        log.WriteLine("durable on PostgreSQL: starting a throwaway cluster (initdb, loopback, fsync on)");
        await using var pg = await ThrowawayPostgres.StartAsync(fsync: true, ct: ct);
        return await DurableBenchmark.RunAsync(ops, [1_000], load, valueBytes, log, ct, pg.ConnectionString());
    }

    /// <summary>/proc/loadavg: other work on this shared machine moves every figure.</summary>
    private static string ReadLoadAvg()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "";
        }
    }

    public sealed record Target(string Name, string Value, bool Met, string? Note = null);

    private static string Size(long n) => n >= 1_000_000 ? $"{n / 1_000_000}M" : n >= 1_000 ? $"{n / 1_000}k" : n.ToString(CultureInfo.InvariantCulture);

    /// <summary>The markdown table (and target list) of one result.</summary>
    public static string Markdown(JsonObject r)
    {
        double D(string name) => r[name]!.GetValue<double>();
        var d = r["details"]!;
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"`{r["command"]}` — {r["machine"]}, {r["started_at"]}, wall {D("wall_s"):0} s, load average {r["loadavg_at_start"]} → {r["loadavg_at_end"]}");
        sb.AppendLine();
        sb.AppendLine("| part | figure | vs baseline |");
        sb.AppendLine("| --- | ---: | --- |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 1. raw wire (duplex 1 KiB msg/s, no storage) | {D("raw_wire_ops_per_s"):N0} | ceiling |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 2. storage (SQLite WAL FULL, 1 KiB rows, 256/512 per tx) | {D("storage_rows_per_s"):N0} rows/s | ceiling |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 3. naive unary + commit per op, 1 caller | {D("naive_ops_per_s"):N0} ops/s | baseline |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 3. naive, 16 callers | {D("naive_16_callers_ops_per_s"):N0} ops/s | baseline |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 4. **ShareRpc durable** (outbox fsync → AppendOps → server fsync → ack) | **{D("durable_ops_per_s"):N0} ops/s** | {D("ratio_durable_over_raw"):0.00}× raw, {D("ratio_durable_over_naive"):0.0}× naive (1 caller), {D("ratio_durable_over_naive_16"):0.0}× naive (16), {D("ratio_durable_over_storage"):0.00}× storage |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 4. durable, every `PendingOp.Acked` observed | {r["durable_acks_observed_ops_per_s"]?.GetValue<double>():N0} ops/s | |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 4. enqueue→ack at 1k ops/s offered | p50 {D("durable_p50_ms"):0.00} / p99 {D("durable_p99_ms"):0.00} / p99.9 {D("durable_p999_ms"):0.00} ms | |");
        if (r["durable_pg_ops_per_s"] is { } pg)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| 4. **durable on PostgreSQL** (same path, server on PostgreSQL 15, fsync on) | **{pg.GetValue<double>():N0} ops/s** | {D("ratio_durable_pg_over_sqlite"):0.00}× durable on SQLite; p99 at 1k ops/s {D("durable_pg_p99_ms"):0.00} ms |");
        }
        else
        {
            sb.AppendLine("| 4. durable on PostgreSQL | not measured (no PostgreSQL: pass --pg) | |");
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"| 4. enqueue→ack at 10k ops/s offered | p50 {D("durable_10k_p50_ms"):0.00} / p99 {D("durable_10k_p99_ms"):0.00} / p99.9 {D("durable_10k_p999_ms"):0.00} ms | |");
        foreach (var c in d["dedupe"]!["cases"]!.AsArray())
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| 5. durable with {c!["preloaded"]!.GetValue<long>():N0} ops already in the log | {c["ops_per_second"]!.GetValue<double>():N0} ops/s | |");
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"| 5. dedupe ratio (largest ÷ empty) | {D("dedupe_ratio"):0.00}× | |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 6. recovery: client SIGKILLed with {r["recovery_ops"]!.GetValue<long>():N0} unacked ops, restarted | {D("recovery_s"):0.00} s to all acked, {r["duplicates_applied"]} duplicates applied | {d["recovery"]!["ops_per_second"]!.GetValue<double>():N0} ops/s |");
        foreach (var c in d["fanout"]!["cases"]!.AsArray())
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| 7. fan-out, {c!["subscribers"]} subscribers | {c["delivered_ops_per_second"]!.GetValue<double>():N0} ops/s delivered | |");
        }

        foreach (var c in d["memory"]!["cases"]!.AsArray())
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| 8. client peak RSS, {c!["pending_ops"]!.GetValue<long>():N0} pending ops | {c["peak_rss_mib"]!.GetValue<double>():0} MiB | {c["bytes_per_pending_op"]!.GetValue<double>():0} B per pending op |");
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"| 9. outbox alone, 1-op commits one after another (fsync each) | {D("commit_1row_per_s"):N0} commits/s (p99 {D("commit_1row_p99_ms"):0.00} ms) | ceiling of a sequential caller |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 9. sequential producer (one task awaiting each `PutAsync`) | {D("producer_ops_per_s"):N0} ops/s acked, {D("producer_ops_per_batch"):0.0} ops per batch | {D("ratio_producer_over_commit_1row"):0.00}× the 1-row commit rate |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| 10. `sharerpc append --file` of {r["cli_append_ops"]!.GetValue<long>():N0} puts | {D("cli_append_ops_per_s"):N0} ops/s | {D("ratio_cli_append_over_durable"):0.00}× durable saturation |");
        sb.AppendLine();
        sb.AppendLine("| target | measured | status |");
        sb.AppendLine("| --- | ---: | --- |");
        foreach (var t in r["targets"]!.AsArray())
        {
            var note = t!["note"]?.GetValue<string>();
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {t["name"]} | {t["value"]} | {(t["met"]!.GetValue<bool>() ? "met" : "**missed**")}{(note is null ? "" : " (" + note + ")")} |");
        }

        return sb.ToString();
    }
}
