using System.Diagnostics;
using ShareRpc.Client;

namespace ShareRpc.Cli.Bench;

/// <summary>Dedupe at scale, recovery after a client kill, subscribe fan-out and client memory.</summary>
internal static class ScaleBenchmarks
{
    // ------------------------------------------------------------------ dedupe

    public sealed record DedupeCase(long Preloaded, double PreloadOpsPerSecond, double PreloadSeconds, long Ops, double OpsPerSecond, double[] RoundsOpsPerSecond, double ServerCpuUsPerOp, ServerStats? Server);

    public sealed record DedupeResult(DedupeCase[] Cases, double Ratio);

    /// <summary>
    /// Durable ops/s (same measurement as "durable" saturation) on a share whose log already holds
    /// each preloaded size; the preload streams AppendOps batches straight on the wire.
    /// </summary>
    public static async Task<DedupeResult> DedupeAsync(long[] sizes, long ops, int valueBytes, TextWriter log, CancellationToken ct)
    {
        log.WriteLine($"dedupe bench: durable ops/s on a share already holding {string.Join(", ", sizes.Select(s => s.ToString("N0")))} ops ({ops:N0} ops each)");
        var cases = new List<DedupeCase>();
        foreach (var size in sizes)
        {
            var dir = BenchSupport.TempDir("dedupe");
            try
            {
                await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct);
                await using var s = await DurableBenchmark.Session.OpenAsync(server.Address, Path.Combine(dir, "outbox.db"), "dedupe", ct);
                var live = await s.Client.RedeemAsync(s.SturdyRef, ct);
                var sw = Stopwatch.StartNew();
                double preloadRate;
                using (var channel = BenchSupport.Channel(server.Address))
                {
                    preloadRate = await BenchSupport.PreloadAsync(channel, live.LiveRef, size, valueBytes, 512, ct);
                }

                var preloadSeconds = sw.Elapsed.TotalSeconds;

                // Warm-up on the same share, then the best of three rounds: on a shared 2-core
                // machine a burst of other work can halve one round; the best round is the capacity.
                await DurableBenchmark.SaturateAsync(s, Math.Min(ops / 5, 20_000), valueBytes, false, ct);
                await server.StatsAsync(ct);
                var rounds = new List<double>();
                for (var round = 0; round < 3; round++)
                {
                    rounds.Add((await DurableBenchmark.SaturateAsync(s, ops / 3, valueBytes, false, ct)).OpsPerSecond);
                }

                var stats = await server.StatsAsync(ct);
                var c = new DedupeCase(size, BenchSupport.R(preloadRate), BenchSupport.R(preloadSeconds, 1), ops / 3 * 3, rounds.Max(), [.. rounds], BenchSupport.R(stats.CpuSeconds * 1e6 / (ops / 3 * 3), 1), stats);
                cases.Add(c);
                log.WriteLine($"  {size,11:N0} in the log (preload {preloadSeconds:0.0} s, {preloadRate:N0} ops/s): {c.OpsPerSecond:N0} ops/s durable (best of {string.Join(" / ", c.RoundsOpsPerSecond.Select(r => r.ToString("N0")))}); server {c.ServerCpuUsPerOp:0} µs CPU/op, FindOps {Span(stats, "FindOpsAsync")}, commit {stats.CommitMeanMs:0.00} ms");
            }
            finally
            {
                BenchSupport.DeleteDir(dir);
            }
        }

        return new DedupeResult([.. cases], BenchSupport.R(cases[^1].OpsPerSecond / cases[0].OpsPerSecond, 3));
    }

    private static string Span(ServerStats s, string name) =>
        s.Spans.TryGetValue(name, out var v) && v.Count > 0 ? $"{v.TotalMs / v.Count:0.00} ms/call ×{v.Count}" : "-";

    // ------------------------------------------------------------------ recovery

    public sealed record RecoveryResult(long Ops, double EnqueueSeconds, long UnackedAtKill, double RecoverySeconds, double OpsPerSecond, long Applied, long DuplicatesApplied, long ReplayPeakRssBytes, long ServerAppliedBeforeKill = 0, long ServerDuplicateAcks = 0);

    /// <summary>
    /// A child client enqueues <paramref name="ops"/> ops while every ack is held unrecorded (its
    /// first batches are applied on the server, none acked in the outbox), prints, and is SIGKILLed.
    /// A fresh <c>sharerpc append</c> on the same outbox then resumes: seconds until it has every
    /// ack, and how many ops the server applied beyond <paramref name="ops"/> (must be 0).
    /// </summary>
    public static async Task<RecoveryResult> RecoveryAsync(long ops, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var dir = BenchSupport.TempDir("recovery");
        try
        {
            log.WriteLine($"recovery bench: client SIGKILLed with {ops:N0} unacked ops ({valueBytes} B), restarted");
            await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct);
            var outbox = Path.Combine(dir, "outbox.db");
            string sturdy;
            await using (var creator = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = outbox }))
            {
                sturdy = await creator.EnsureShareAsync(server.Address, "recovery", "", ct);
            }

            var sw = Stopwatch.StartNew();
            using (var child = BenchSupport.StartSelf("bench", "client-hold", "--outbox", outbox, "--ref", sturdy, "--ops", ops.ToString(System.Globalization.CultureInfo.InvariantCulture), "--value-bytes", valueBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), "--hold", "ack"))
            {
                await BenchSupport.ReadLineStartingAsync(child, "enqueued ", ct);
                child.Kill(true);
                await child.WaitForExitAsync(ct);
            }

            var enqueueSeconds = sw.Elapsed.TotalSeconds;
            var beforeRestart = await server.StatsAsync(ct);
            long unacked;
            await using (var store = Client.Outbox.OutboxStore.Open(outbox))
            {
                var producer = (await store.GetProducersAsync()).Single();
                unacked = (long)(producer.NextSeq - 1 - producer.AckedSeq);
            }

            sw.Restart();
            using var replayer = BenchSupport.StartSelf("append", "--ref", sturdy, "--outbox", outbox, "--file", "/dev/null");
            var (output, peak) = await BenchSupport.RunToExitAsync(replayer, ct);
            var seconds = sw.Elapsed.TotalSeconds;
            if (replayer.ExitCode != 0)
            {
                throw new InvalidOperationException($"the restarted client failed ({replayer.ExitCode}): {output}");
            }

            await using var observer = new ShareRpcClient();
            var applied = (long)(await observer.RedeemAsync(sturdy, ct)).Cursor;
            var afterRestart = await server.StatsAsync(ct);
            var r = new RecoveryResult(ops, BenchSupport.R(enqueueSeconds, 2), unacked, BenchSupport.R(seconds, 2), BenchSupport.R(ops / seconds), applied, applied - ops, peak, beforeRestart.OpsApplied, afterRestart.OpsDuplicate);
            log.WriteLine($"  {unacked:N0} unacked at kill (enqueue {enqueueSeconds:0.0} s); restart → all acked in {r.RecoverySeconds:0.00} s ({r.OpsPerSecond:N0} ops/s); applied {applied:N0}, duplicates applied {r.DuplicatesApplied}; restarted process peak RSS {peak / 1048576.0:0} MiB; the server had applied {r.ServerAppliedBeforeKill:N0} of them before the kill and answered {r.ServerDuplicateAcks:N0} resent ops DUPLICATE");
            return r;
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }

    /// <summary>
    /// <c>sharerpc bench client-hold</c> (hidden child): enqueues N ops with the sender held (before
    /// send or before recording acks), prints "enqueued N peak_rss BYTES rss BYTES", then waits to be killed.
    /// </summary>
    public static async Task<int> ClientHoldAsync(string outbox, string sturdy, long ops, int valueBytes, string hold, CancellationToken ct)
    {
        var never = new TaskCompletionSource();
        var options = new ShareRpcClientOptions
        {
            OutboxPath = outbox,
            Faults = hold == "ack" ? new ClientFaultHooks { BeforeRecordAck = _ => never.Task } : new ClientFaultHooks { BeforeSend = _ => never.Task },
        };
        var client = new ShareRpcClient(options);
        var writer = client.OpenWriter(sturdy);
        var value = new byte[valueBytes];
        Random.Shared.NextBytes(value);
        long next = -1;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(
            async () =>
            {
                long i;
                while ((i = Interlocked.Increment(ref next)) < ops)
                {
                    // The PendingOp is dropped: what stays in memory is the SDK's own.
                    await writer.PutAsync("docs", "k" + (i % 100_000), value);
                    if (i % 1_000_000 == 0 && i > 0)
                    {
                        await Console.Error.WriteLineAsync($"enqueued {i:N0}");
                    }
                }
            },
            ct)));
        GC.Collect();
        var pid = Environment.ProcessId;
        Console.WriteLine($"enqueued {ops} peak_rss {BenchSupport.ReadRss(pid)} rss {BenchSupport.ReadRss(pid, peak: false)} managed {GC.GetTotalMemory(false)}");
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite, ct);
        return 0;
    }

    // ------------------------------------------------------------------ memory

    public sealed record MemoryCase(long PendingOps, double EnqueueSeconds, long PeakRssBytes, long RssBytes, long ManagedBytes, double PeakRssMib, double BytesPerPendingOp);

    public sealed record MemoryResult(long BaselineRssBytes, MemoryCase[] Cases);

    /// <summary>
    /// Peak RSS (VmHWM) of a client process (<c>bench client-hold --hold send</c>) that has
    /// enqueued N ops which stay pending (nothing is sent), against a 1k-op baseline.
    /// </summary>
    public static async Task<MemoryResult> MemoryAsync(long[] sizes, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var dir = BenchSupport.TempDir("memory");
        try
        {
            log.WriteLine($"memory bench: client process holding N pending ops ({valueBytes} B values), peak RSS");
            await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct);
            MemoryCase? baseline = null;
            var cases = new List<MemoryCase>();
            foreach (var n in sizes.Prepend(1_000L))
            {
                var outbox = Path.Combine(dir, $"outbox{n}.db");
                string sturdy;
                await using (var creator = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = outbox }))
                {
                    sturdy = await creator.EnsureShareAsync(server.Address, "memory" + n, "", ct);
                }

                var sw = Stopwatch.StartNew();
                using var child = BenchSupport.StartSelf("bench", "client-hold", "--outbox", outbox, "--ref", sturdy, "--ops", n.ToString(System.Globalization.CultureInfo.InvariantCulture), "--value-bytes", valueBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), "--hold", "send");
                var line = await BenchSupport.ReadLineStartingAsync(child, "enqueued ", ct);
                var seconds = sw.Elapsed.TotalSeconds;
                child.Kill(true);
                await child.WaitForExitAsync(ct);
                var parts = line.Split(' ');
                long Field(string name) => long.Parse(parts[Array.IndexOf(parts, name) + 1], System.Globalization.CultureInfo.InvariantCulture);
                var peak = Field("peak_rss");
                var c = new MemoryCase(n, BenchSupport.R(seconds, 1), peak, Field("rss"), Field("managed"), BenchSupport.R(peak / 1048576.0, 1), baseline is null ? 0 : BenchSupport.R((double)(peak - baseline.PeakRssBytes) / (n - baseline.PendingOps), 1));
                if (baseline is null)
                {
                    baseline = c;
                }
                else
                {
                    cases.Add(c);
                }

                log.WriteLine($"  {n,11:N0} pending: peak RSS {c.PeakRssMib:0} MiB (managed heap {c.ManagedBytes / 1048576.0:0} MiB, {c.BytesPerPendingOp:0} B per pending op over the 1k baseline; enqueue {seconds:0.0} s)");
                File.Delete(outbox);
            }

            return new MemoryResult(baseline!.PeakRssBytes, [.. cases]);
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }

    // ------------------------------------------------------------------ fan-out

    public sealed record FanoutCase(int Subscribers, long OpsEach, double Seconds, double DeliveredOpsPerSecond);

    public sealed record FanoutResult(long OpsInShare, FanoutCase[] Cases);

    /// <summary>
    /// A share holding <paramref name="ops"/> ops; S subscribers (ShareRpcClient.SubscribeAsync from
    /// cursor 1, up to 25 per client connection) each read all of them: delivered ops/s = S × ops / s.
    /// </summary>
    public static async Task<FanoutResult> FanoutAsync(long ops, int[] subscriberCounts, int valueBytes, TextWriter log, CancellationToken ct)
    {
        var dir = BenchSupport.TempDir("fanout");
        try
        {
            log.WriteLine($"fan-out bench: {ops:N0} ops of {valueBytes} B in one share, read by {string.Join(", ", subscriberCounts)} subscribers");
            await using var server = await ServerProcess.StartAsync(Path.Combine(dir, "server"), ct);
            await using var producer = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = Path.Combine(dir, "outbox.db") });
            var sturdy = await producer.EnsureShareAsync(server.Address, "fanout", "", ct);
            var live = await producer.RedeemAsync(sturdy, ct);
            using (var channel = BenchSupport.Channel(server.Address))
            {
                await BenchSupport.PreloadAsync(channel, live.LiveRef, ops, valueBytes, 512, ct);
            }

            // Every subscriber holds its own read capability, as every viewer of a share link does: one
            // capability's streams are capped (MaxStreamsPerCapability, docs/threat-model.md).
            var readers = new List<string>();
            for (var i = 0; i < subscriberCounts.Max(); i++)
            {
                readers.Add((await producer.DelegateAsync(sturdy, [Sharerpc.V1.Right.Read], cancellationToken: ct)).SturdyRef);
            }

            var cases = new List<FanoutCase>();
            foreach (var n in subscriberCounts)
            {
                var clients = Enumerable.Range(0, (n + 24) / 25).Select(_ => new ShareRpcClient()).ToArray();
                try
                {
                    // Connect and redeem first, so the figure is delivery, not set-up.
                    for (var i = 0; i < n; i++)
                    {
                        await clients[i / 25].RedeemAsync(readers[i], ct);
                    }

                    var sw = Stopwatch.StartNew();
                    await Task.WhenAll(Enumerable.Range(0, n).Select(i => Task.Run(
                        async () =>
                        {
                            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
                            long seen = 0;
                            try
                            {
                                await foreach (var e in clients[i / 25].SubscribeAsync(readers[i], 1, false, stop.Token))
                                {
                                    if (e.Op is not null && ++seen == ops)
                                    {
                                        break;
                                    }
                                }
                            }
                            catch (OperationCanceledException) when (seen == ops)
                            {
                            }
                        },
                        ct)));
                    var seconds = sw.Elapsed.TotalSeconds;
                    var fc = new FanoutCase(n, ops, BenchSupport.R(seconds, 2), BenchSupport.R(n * ops / seconds));
                    cases.Add(fc);
                    log.WriteLine($"  {n,3} subscribers: {fc.DeliveredOpsPerSecond:N0} ops/s delivered ({seconds:0.00} s)");
                }
                finally
                {
                    foreach (var c in clients)
                    {
                        await c.DisposeAsync();
                    }
                }
            }

            return new FanoutResult(ops, [.. cases]);
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }
}
