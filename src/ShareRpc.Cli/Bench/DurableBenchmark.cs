using System.Collections.Concurrent;
using System.Diagnostics;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// ShareRpc durable, end to end: producer → outbox (fsync) → pipelined AppendOps → server
/// (separate <c>sharerpc bench server</c> process, fsync) → ack recorded in the outbox. Saturation
/// ops/s (many concurrent PutAsync, then FlushAsync), open-loop enqueue→ack latency at fixed
/// offered loads, and where the time goes: client-side timeline from the sender's hooks, server
/// spans from the child's timing proxy and "ShareRpc.Server" meter, and the outbox stages alone.
/// </summary>
internal static class DurableBenchmark
{
    public sealed record Saturation(
        long Ops,
        double Seconds,
        double OpsPerSecond,
        double EnqueueSeconds,
        double EnqueueOpsPerSecond,
        double EnqueueP50Ms,
        double EnqueueP99Ms,
        Timeline? Timeline,
        ServerStats? Server,
        double ClientCpuSeconds = 0,
        double ClientCpuUsPerOp = 0,
        double ServerCpuUsPerOp = 0);

    /// <summary>Per batch, from the sender's hooks: sealed → ack arrived (wire + server), ack arrived → ops completed (outbox ack recording).</summary>
    public sealed record Timeline(
        long Batches,
        double OpsPerBatch,
        double SendToAckMeanMs,
        double SendToAckP50Ms,
        double SendToAckP99Ms,
        double AckRecordMeanMs,
        double AckRecordTotalS,
        double BatchesInFlightMean,
        double? DurableToSealedP50Ms = null,
        double? DurableToSealedP99Ms = null,
        double? AckedToCompletedP50Ms = null,
        double? ClientGcPauseMs = null,
        double? ThreadPoolLagP99Ms = null,
        double? ThreadPoolLagMaxMs = null);

    public sealed record LoadCase(int OfferedOpsPerSecond, long Ops, double Seconds, double AckedOpsPerSecond, double P50Ms, double P90Ms, double P99Ms, double P999Ms, double MaxMs, double EnqueueP50Ms, double EnqueueP99Ms, Timeline? Timeline = null, ServerStats? Server = null);

    public sealed record OutboxStages(long Ops, double EnqueueOpsPerSecond, double SealOpsPerSecond, double RecordAckOpsPerSecond, double EnqueueUsPerOp, double SealUsPerOp, double RecordAckUsPerOp, double CombinedCeilingOpsPerSecond);

    /// <param name="SaturationAwaitingAcks">The same, smaller, with every PendingOp.Acked observed (as a caller that awaits its acks does).</param>
    /// <param name="OutboxEngine">The engine of the client outboxes measured ("sqlite", "litedb").</param>
    public sealed record Result(int ValueBytes, Saturation Saturation, LoadCase[] Loads, OutboxStages Stages, Saturation? SaturationAwaitingAcks = null, string OutboxEngine = "sqlite");

    /// <summary>Client settings under test (null: the SDK defaults).</summary>
    internal static int? LingerMs { get; set; }

    internal static int? MaxInFlightBatches { get; set; }

    /// <summary>The engine of every client outbox the bench opens (<c>--outbox-engine</c>; docs/client.md, "Outbox stores").</summary>
    internal static OutboxEngine Engine { get; set; } = OutboxEngine.Sqlite;

    /// <param name="postgres">When set, the server child keeps shares in this PostgreSQL database (the durable_pg figure).</param>
    public static async Task<Result> RunAsync(long ops, int[] rates, TimeSpan loadDuration, int valueBytes, TextWriter log, CancellationToken ct, string? postgres = null)
    {
        var dir = BenchSupport.TempDir("durable");
        try
        {
            log.WriteLine(postgres is null
                ? $"durable bench: {Engine} outbox (fsync per commit) → AppendOps → server child (FULL) → ack; {valueBytes} B values"
                : $"durable bench on PostgreSQL: {Engine} outbox (fsync per commit) → AppendOps → server child → PostgreSQL (fsync, synchronous_commit on) → ack; {valueBytes} B values");
            await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct, postgres);
            var stages = await OutboxStagesAsync(Path.Combine(dir, "stages.db"), (int)Math.Min(ops, 100_000), valueBytes, ct);
            log.WriteLine($"  outbox stages alone ({stages.Ops:N0} ops): enqueue {stages.EnqueueOpsPerSecond:N0} ops/s ({stages.EnqueueUsPerOp:0.0} µs/op), seal {stages.SealOpsPerSecond:N0} ops/s ({stages.SealUsPerOp:0.0} µs/op), record ack {stages.RecordAckOpsPerSecond:N0} ops/s ({stages.RecordAckUsPerOp:0.0} µs/op) → one-connection ceiling {stages.CombinedCeilingOpsPerSecond:N0} ops/s");

            // Warm-up (JIT, connections), then the measured saturation run on a fresh share.
            await using (var warm = await Session.OpenAsync(server.Address, Path.Combine(dir, "warm.db"), "warm", ct))
            {
                await SaturateAsync(warm, Math.Min(ops / 5, 20_000), valueBytes, timeline: false, ct);
            }

            await server.StatsAsync(ct);
            Saturation sat;
            await using (var s = await Session.OpenAsync(server.Address, Path.Combine(dir, "sat.db"), "sat", ct))
            {
                sat = await SaturateAsync(s, ops, valueBytes, timeline: true, ct);
            }

            var satServer = await server.StatsAsync(ct);
            sat = sat with { Server = satServer, ServerCpuUsPerOp = BenchSupport.R(satServer.CpuSeconds * 1e6 / sat.Ops, 1) };

            Saturation awaited;
            await using (var s = await Session.OpenAsync(server.Address, Path.Combine(dir, "sat-acked.db"), "sat-acked", ct))
            {
                awaited = await SaturateAsync(s, Math.Min(ops / 5, 20_000), valueBytes, timeline: true, ct, observeAcks: true);
            }

            var awaitedServer = await server.StatsAsync(ct);
            awaited = awaited with { Server = awaitedServer, ServerCpuUsPerOp = BenchSupport.R(awaitedServer.CpuSeconds * 1e6 / awaited.Ops, 1) };
            log.WriteLine($"  saturation: {sat.Ops:N0} ops in {sat.Seconds:0.00} s = {sat.OpsPerSecond:N0} ops/s acked (enqueue alone {sat.EnqueueOpsPerSecond:N0} ops/s, enqueue p50 {sat.EnqueueP50Ms:0.0} ms); CPU per op: client {sat.ClientCpuUsPerOp:0} µs, server {sat.ServerCpuUsPerOp:0} µs ({Environment.ProcessorCount} cores → CPU-bound ceiling ≈ {Environment.ProcessorCount * 1e6 / (sat.ClientCpuUsPerOp + sat.ServerCpuUsPerOp):N0} ops/s)");
            if (sat.Timeline is { } t && sat.Server is { } st)
            {
                log.WriteLine($"    client: {t.Batches} batches of {t.OpsPerBatch:0} ops, seal→ack {t.SendToAckMeanMs:0.0} ms mean (p99 {t.SendToAckP99Ms:0.0}), {t.BatchesInFlightMean:0.0} batches in flight");
                log.WriteLine($"    server: commit latency {st.BatchCommitLatencyMeanMs:0.0} ms mean (p99 {st.BatchCommitLatencyP99Ms:0.0}), {st.Commits} commits × {st.WritesPerCommit:0.0} batches, fsync+commit {st.CommitMeanMs:0.00} ms, committer busy {st.CommitLoopBusyFraction:P0}, cpu {st.CpuSeconds:0.0} s");
            }

            log.WriteLine($"  saturation with every PendingOp.Acked observed: {awaited.Ops:N0} ops = {awaited.OpsPerSecond:N0} ops/s; CPU per op: client {awaited.ClientCpuUsPerOp:0} µs, server {awaited.ServerCpuUsPerOp:0} µs; ack arrived → ops completed {awaited.Timeline?.AckRecordMeanMs:0.00} ms/batch");

            var loads = new List<LoadCase>();
            foreach (var rate in rates)
            {
                await using var s = await Session.OpenAsync(server.Address, Path.Combine(dir, $"load{rate}.db"), $"load{rate}", ct);
                await OpenLoopAsync(s, rate, TimeSpan.FromSeconds(0.5), valueBytes, ct);
                await server.StatsAsync(ct);
                var c = await OpenLoopAsync(s, rate, loadDuration, valueBytes, ct);
                c = c with { Server = await server.StatsAsync(ct) };
                loads.Add(c);
                log.WriteLine($"  open loop {rate:N0} ops/s offered: enqueue→ack p50 {c.P50Ms:0.00} ms, p99 {c.P99Ms:0.00} ms, p99.9 {c.P999Ms:0.00} ms, max {c.MaxMs:0.0} ms ({c.AckedOpsPerSecond:N0} ops/s acked; enqueue alone p50 {c.EnqueueP50Ms:0.00} ms, p99 {c.EnqueueP99Ms:0.00} ms)");
                if (c.Timeline is { } lt && c.Server is { } ls)
                {
                    log.WriteLine($"    durable→sealed+sent p50 {lt.DurableToSealedP50Ms:0.00} ms p99 {lt.DurableToSealedP99Ms:0.00} ms; client GC pauses {lt.ClientGcPauseMs:0} ms; thread-pool queue lag p99 {lt.ThreadPoolLagP99Ms:0.00} ms max {lt.ThreadPoolLagMaxMs:0.0} ms");
                    log.WriteLine($"    {lt.Batches} batches of {lt.OpsPerBatch:0.0} ops, seal→ack p50 {lt.SendToAckP50Ms:0.00} ms p99 {lt.SendToAckP99Ms:0.00} ms, ack recording {lt.AckRecordMeanMs:0.00} ms/batch; server commit latency p50 {ls.BatchCommitLatencyP50Ms:0.00} ms p99 {ls.BatchCommitLatencyP99Ms:0.00} ms, fsync+commit {ls.CommitMeanMs:0.00} ms; {ls.StreamsOpened} AppendOps streams opened");
                }
            }

            return new Result(valueBytes, sat, [.. loads], stages, awaited, Engine.Name);
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }

    /// <summary>A client with its own outbox, a share and its writer; hooks timestamp every batch.</summary>
    internal sealed class Session : IAsyncDisposable
    {
        public ConcurrentDictionary<string, long> Sent { get; } = new(StringComparer.Ordinal);

        public ConcurrentQueue<(string Batch, long At)> AckArrived { get; } = new();

        public required ShareRpcClient Client { get; init; }

        public required ShareWriter Writer { get; init; }

        public required string SturdyRef { get; init; }

        public bool Recording { get; set; }

        public static async Task<Session> OpenAsync(string address, string outbox, string key, CancellationToken ct, string? sturdyRef = null)
        {
            Session? self = null;
            var options = new ShareRpcClientOptions
            {
                OutboxPath = outbox,
                OutboxEngine = Engine,
                Faults = new ClientFaultHooks
                {
                    BeforeSend = b =>
                    {
                        if (self?.Recording == true)
                        {
                            self.Sent[b] = Stopwatch.GetTimestamp();
                        }

                        return Task.CompletedTask;
                    },
                    BeforeRecordAck = b =>
                    {
                        if (self?.Recording == true)
                        {
                            self.AckArrived.Enqueue((b, Stopwatch.GetTimestamp()));
                        }

                        return Task.CompletedTask;
                    },
                },
            };
            options.Linger = LingerMs is { } ms ? TimeSpan.FromMilliseconds(ms) : options.Linger;
            options.MaxInFlightBatches = MaxInFlightBatches ?? options.MaxInFlightBatches;
            var client = new ShareRpcClient(options);
            sturdyRef ??= await client.EnsureShareAsync(address, key, "", ct);
            self = new Session { Client = client, Writer = client.OpenWriter(sturdyRef), SturdyRef = sturdyRef };
            return self;
        }

        public ValueTask DisposeAsync() => Client.DisposeAsync();
    }

    /// <summary>Many concurrent PutAsync (each returns once durable in the outbox), then FlushAsync (all acked).</summary>
    internal static async Task<Saturation> SaturateAsync(Session s, long ops, int valueBytes, bool timeline, CancellationToken ct, bool observeAcks = false)
    {
        var value = new byte[valueBytes];
        Random.Shared.NextBytes(value);
        const int Concurrency = 64;
        var enqueueMs = new double[ops];
        var acks = new long[ops];
        var completions = new ConcurrentBag<long>();
        long next = -1;
        s.Recording = timeline;
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(worker => Task.Run(
            async () =>
            {
                long i;
                while ((i = Interlocked.Increment(ref next)) < ops)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    var p = await s.Writer.PutAsync("docs", "k" + (i % 100_000), value);
                    enqueueMs[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    if (observeAcks)
                    {
                        _ = p.Acked.ContinueWith(_ => completions.Add(Stopwatch.GetTimestamp()), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                    }
                }
            },
            ct)));
        var enqueueSeconds = sw.Elapsed.TotalSeconds;
        await s.Writer.FlushAsync(ct);
        var seconds = sw.Elapsed.TotalSeconds;
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        s.Recording = false;
        Array.Sort(enqueueMs);
        return new Saturation(
            ops,
            BenchSupport.R(seconds, 2),
            BenchSupport.R(ops / seconds),
            BenchSupport.R(enqueueSeconds, 2),
            BenchSupport.R(ops / enqueueSeconds),
            BenchSupport.R(BenchSupport.Percentile(enqueueMs, 0.5), 3),
            BenchSupport.R(BenchSupport.Percentile(enqueueMs, 0.99), 3),
            timeline ? BuildTimeline(s, ops, [.. completions], seconds) : null,
            null,
            BenchSupport.R(cpu, 2),
            BenchSupport.R(cpu * 1e6 / ops, 1));
    }

    private static Timeline? BuildTimeline(Session s, long ops, long[] completions, double seconds, long[]? durableAt = null)
    {
        var arrived = s.AckArrived.ToArray();
        if (arrived.Length == 0)
        {
            return null;
        }

        Array.Sort(completions);
        var rtt = new List<double>();
        var record = new List<double>();
        foreach (var (batch, at) in arrived)
        {
            if (s.Sent.TryGetValue(batch, out var sent))
            {
                rtt.Add(Stopwatch.GetElapsedTime(sent, at).TotalMilliseconds);
            }

            // Acks are recorded one batch at a time, in order: the first op completion after this
            // ack arrived belongs to this batch.
            var idx = Array.BinarySearch(completions, at);
            idx = idx < 0 ? ~idx : idx;
            if (idx < completions.Length)
            {
                record.Add(Stopwatch.GetElapsedTime(at, completions[idx]).TotalMilliseconds);
            }
        }

        double? toSealP50 = null, toSealP99 = null;
        if (durableAt is not null)
        {
            // An op is in the first batch sealed after it became durable (sealing takes every pending op).
            var sent = s.Sent.Values.Order().ToArray();
            var waits = new List<double>(durableAt.Length);
            foreach (var d in durableAt)
            {
                var i = Array.BinarySearch(sent, d);
                i = i < 0 ? ~i : i;
                if (i < sent.Length)
                {
                    waits.Add(Stopwatch.GetElapsedTime(d, sent[i]).TotalMilliseconds);
                }
            }

            var w = waits.Order().ToArray();
            toSealP50 = BenchSupport.R(BenchSupport.Percentile(w, 0.5), 3);
            toSealP99 = BenchSupport.R(BenchSupport.Percentile(w, 0.99), 3);
        }

        var recSorted = record.Order().ToArray();
        var sorted = rtt.Order().ToArray();
        return new Timeline(
            arrived.Length,
            BenchSupport.R((double)ops / arrived.Length, 1),
            BenchSupport.R(sorted.Length == 0 ? 0 : sorted.Average(), 3),
            BenchSupport.R(BenchSupport.Percentile(sorted, 0.5), 3),
            BenchSupport.R(BenchSupport.Percentile(sorted, 0.99), 3),
            BenchSupport.R(record.Count == 0 ? 0 : record.Average(), 3),
            BenchSupport.R(record.Sum() / 1000, 2),
            BenchSupport.R(rtt.Sum() / 1000 / seconds, 2),
            toSealP50,
            toSealP99,
            BenchSupport.R(BenchSupport.Percentile(recSorted, 0.5), 3));
    }

    /// <summary>Open loop: enqueues scheduled at the rate whatever the backlog; latency from the enqueue call to PendingOp.Acked.</summary>
    internal static async Task<LoadCase> OpenLoopAsync(Session s, int rate, TimeSpan duration, int valueBytes, CancellationToken ct)
    {
        var value = new byte[valueBytes];
        Random.Shared.NextBytes(value);
        var total = (long)(rate * duration.TotalSeconds);
        var latency = new double[total];
        var enqueue = new double[total];
        var tasks = new Task[total];
        var completions = new long[total];
        var durableAt = new long[total];
        var gc0 = GC.GetTotalPauseDuration();
        using var probeStop = new CancellationTokenSource();
        var probe = ThreadPoolLagProbeAsync(probeStop.Token);
        s.Sent.Clear();
        s.AckArrived.Clear();
        s.Recording = true;
        var sw = Stopwatch.StartNew();

        // The schedule runs on its own thread with Thread.Sleep(1) (~1 ms here; Task.Delay(1) waits
        // for the coarser timer queue and would offer the load in bursts).
        var scheduler = new Thread(() =>
        {
            long i = 0;
            while (i < total && !ct.IsCancellationRequested)
            {
                var due = Math.Min(total, (long)(sw.Elapsed.TotalSeconds * rate) + 1);
                for (; i < due; i++)
                {
                    tasks[i] = OneAsync(i);
                }

                if (i < total)
                {
                    Thread.Sleep(1);
                }
            }
        })
        { IsBackground = true, Name = "open-loop schedule" };
        scheduler.Start();
        await Task.Run(scheduler.Join, ct);
        await Task.WhenAll(tasks);
        var seconds = sw.Elapsed.TotalSeconds;
        s.Recording = false;
        probeStop.Cancel();
        var lag = (await probe).Order().ToArray();
        var timeline = BuildTimeline(s, total, completions, seconds, durableAt) is { } tl
            ? tl with
            {
                ClientGcPauseMs = BenchSupport.R((GC.GetTotalPauseDuration() - gc0).TotalMilliseconds, 1),
                ThreadPoolLagP99Ms = BenchSupport.R(BenchSupport.Percentile(lag, 0.99), 3),
                ThreadPoolLagMaxMs = BenchSupport.R(lag.Length == 0 ? 0 : lag[^1], 3),
            }
            : null;
        Array.Sort(latency);
        Array.Sort(enqueue);
        return new LoadCase(
            rate,
            total,
            BenchSupport.R(seconds, 2),
            BenchSupport.R(total / seconds),
            BenchSupport.R(BenchSupport.Percentile(latency, 0.5), 3),
            BenchSupport.R(BenchSupport.Percentile(latency, 0.9), 3),
            BenchSupport.R(BenchSupport.Percentile(latency, 0.99), 3),
            BenchSupport.R(BenchSupport.Percentile(latency, 0.999), 3),
            BenchSupport.R(latency.Length == 0 ? 0 : latency[^1], 3),
            BenchSupport.R(BenchSupport.Percentile(enqueue, 0.5), 3),
            BenchSupport.R(BenchSupport.Percentile(enqueue, 0.99), 3),
            timeline);

        async Task OneAsync(long idx)
        {
            var t0 = Stopwatch.GetTimestamp();
            var p = await s.Writer.PutAsync("docs", "k" + (idx % 100_000), value);
            durableAt[idx] = Stopwatch.GetTimestamp();
            enqueue[idx] = Stopwatch.GetElapsedTime(t0, durableAt[idx]).TotalMilliseconds;
            await p.Acked;
            completions[idx] = Stopwatch.GetTimestamp();
            latency[idx] = Stopwatch.GetElapsedTime(t0, completions[idx]).TotalMilliseconds;
        }
    }

    /// <summary>Every 5 ms, how long a work item queued to the thread pool waits before it runs.</summary>
    private static async Task<List<double>> ThreadPoolLagProbeAsync(CancellationToken ct)
    {
        var lags = new List<double>();
        while (!ct.IsCancellationRequested)
        {
            var queued = Stopwatch.GetTimestamp();
            var started = await Task.Run(Stopwatch.GetTimestamp, CancellationToken.None);
            lags.Add(Stopwatch.GetElapsedTime(queued, started).TotalMilliseconds);
            try
            {
                await Task.Delay(5, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return lags;
    }

    /// <summary>
    /// The outbox's three writes per op, each alone on a fresh file (FULL): enqueue (64 concurrent,
    /// group commit), seal (batches of MaxBatchOps), record ack (one transaction per batch). They
    /// share one SQLite connection and lock in the real sender, so their costs add up.
    /// </summary>
    internal static async Task<OutboxStages> OutboxStagesAsync(string path, int ops, int valueBytes, CancellationToken ct)
    {
        var value = Google.Protobuf.ByteString.CopyFrom(new byte[valueBytes]);
        await using var outbox = Engine.Open(path);
        var shareId = "stages";
        await outbox.EnsureProducerAsync(shareId, "sharerpc://127.0.0.1:1/stages/cap#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        var sw = Stopwatch.StartNew();
        long next = -1;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(
            async () =>
            {
                long i;
                while ((i = Interlocked.Increment(ref next)) < ops)
                {
                    await outbox.EnqueueAsync(shareId, new Op { Put = new Put { Collection = "docs", Key = "k" + i, Value = value } });
                }
            },
            ct)));
        var enqueueS = sw.Elapsed.TotalSeconds;

        sw.Restart();
        var batches = new List<SealedBatch>();
        while (await outbox.SealNextBatchAsync(shareId) is { } b)
        {
            batches.Add(b);
        }

        var sealS = sw.Elapsed.TotalSeconds;
        var responses = batches.Select(b =>
        {
            var req = b.Parse();
            var r = new AppendOpsResponse { BatchId = b.BatchId, BatchStatus = BatchStatus.Accepted, Cursor = b.LastSeq };
            foreach (var op in req.Ops)
            {
                r.Acks.Add(new OpAck { OpId = op.OpId, Status = OpStatus.Applied, Cursor = op.Seq, Version = 1 });
            }

            return r;
        }).ToList();
        sw.Restart();
        foreach (var r in responses)
        {
            await outbox.RecordAckAsync(shareId, r);
        }

        var ackS = sw.Elapsed.TotalSeconds;
        double Us(double s) => BenchSupport.R(s * 1e6 / ops, 1);
        return new OutboxStages(
            ops,
            BenchSupport.R(ops / enqueueS),
            BenchSupport.R(ops / sealS),
            BenchSupport.R(ops / ackS),
            Us(enqueueS),
            Us(sealS),
            Us(ackS),
            BenchSupport.R(ops / (enqueueS + sealS + ackS)));
    }
}
