using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using Xunit.Abstractions;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 13's hostile load, all at once against a real <c>sharerpc serve</c> process with its
/// default limits: slow readers that never read (snapshots and catch-up of a 48 MiB share), a byte
/// flood of 3 MiB batches on eight streams, amplifying batches (1,024 appends into 1,024
/// collections) on two, and stream hoarding on the victim's share — every one from an ordinary
/// capability — while an honest producer writes through the SDK. The server's peak RSS stays under
/// its budget (docs/threat-model.md: 512 MiB with the default limits), the honest producer's p99
/// enqueue→ack stays bounded, and nothing it enqueued is lost or duplicated.
/// </summary>
public sealed class HostileLoadTests(ITestOutputHelper output) : IDisposable
{
    private const long MiB = 1024 * 1024;
    private const long RssBudgetBytes = 512 * MiB;
    private static readonly TimeSpan s_p99Bound = TimeSpan.FromSeconds(10);
    private const int HonestOps = 600;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A field of /proc/PID/status in bytes (VmRSS: resident now; VmHWM: the peak resident size).</summary>
    private static long ProcStatusBytes(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    [Fact]
    public async Task Under_slow_readers_a_byte_flood_amplifying_batches_and_hoarding_the_server_stays_in_budget_and_the_honest_producer_loses_nothing()
    {
        if (!OperatingSystem.IsLinux()) return; // RSS from /proc
        await using var server = await ServeProcess.StartAsync(_dir.File("server"));
        var pid = server.Process.Id;
        await using var attackers = new HostileAttackers(server.Address);
        await using var honest = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("honest.db") });
        var honestRef = await honest.EnsureShareAsync(server.Address, "honest-session");

        // The victim share's delegates (hoarders), a 48 MiB share for the slow readers, the flooders' own shares.
        using var channel = Channel(server.Address);
        var honestOwner = Bearer((await Stub(channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = honestRef })).LiveRef);
        var (_, hoardRead) = await attackers.DelegateAsync(honestOwner, Right.Read);
        var (_, hoardAppend) = await attackers.DelegateAsync(honestOwner, Right.Append);
        var (_, bigOwner) = await attackers.OwnShareAsync("big");
        await attackers.FillAsync(bigOwner, 48);
        var (_, bigReader) = await attackers.DelegateAsync(bigOwner, Right.Read);
        var baseline = ProcStatusBytes(pid, "VmRSS");

        attackers.SlowReaders(bigReader, streams: 8, hold: TimeSpan.FromSeconds(8));
        for (var i = 0; i < 8; i++) attackers.Flood((await attackers.OwnShareAsync("flood-" + i)).Auth, streams: 1);
        for (var i = 0; i < 2; i++) attackers.Amplify((await attackers.OwnShareAsync("amplify-" + i)).Auth, streams: 1);
        attackers.Hoard(hoardRead, hoardAppend, attempts: 24);
        await Wait.UntilAsync(() => attackers.FloodBatchesAcked >= 8 && attackers.AmplifyingBatchesAcked >= 1 && attackers.SlowReadersOpen == 8
            && attackers.HoardedStreams + attackers.HoardRefusals == 24, TimeSpan.FromSeconds(60), "the attacks got under way");

        var (latencies, enqueued, acks) = await HonestProducerAsync(honest, honestRef);
        var peakDuringAttack = ProcStatusBytes(pid, "VmHWM");
        var floodAcked = attackers.FloodBatchesAcked;
        await attackers.Stop();

        var p99 = latencies.Order().ElementAt((int)Math.Ceiling(latencies.Count * 0.99) - 1);
        output.WriteLine($"server RSS: {baseline / MiB} MiB before the attack, peak {peakDuringAttack / MiB} MiB (budget {RssBudgetBytes / MiB} MiB)");
        output.WriteLine($"honest producer: {HonestOps} ops, p50 {Percentile(latencies, 0.5).TotalMilliseconds:0} ms, p99 {p99.TotalMilliseconds:0} ms, max {latencies.Max().TotalMilliseconds:0} ms");
        output.WriteLine($"attack: {floodAcked} flood batches (3 MiB) acked, {attackers.AmplifyingBatchesAcked} amplifying batches acked, " +
                         $"{attackers.HoardedStreams} hoarded streams, {attackers.HoardRefusals} refused; failures: {string.Join(",", attackers.Failures)}");

        Assert.True(peakDuringAttack < RssBudgetBytes, $"peak RSS {peakDuringAttack / MiB} MiB");
        Assert.True(p99 < s_p99Bound, $"honest p99 {p99.TotalMilliseconds:0} ms");
        Assert.All(acks, a => Assert.Equal(OpStatus.Applied, a.Status));
        Assert.Equal(16, attackers.HoardedStreams); // MaxStreamsPerCapability: the rest refused
        Assert.DoesNotContain(attackers.Failures, c => c is StatusCode.Internal or StatusCode.Unknown);
        await NothingLostOrDuplicatedAsync(honest, honestRef, enqueued);
    }

    /// <summary>Writes <see cref="HonestOps"/> puts through the SDK at a steady pace and times each from enqueue to ack.</summary>
    private static async Task<(List<TimeSpan> Latencies, List<string> Enqueued, List<OpOutcome> Acks)> HonestProducerAsync(ShareRpcClient client, string sturdyRef)
    {
        var writer = client.OpenWriter(sturdyRef);
        var value = new byte[1024];
        var timed = new List<Task<(TimeSpan, OpOutcome)>>();
        var enqueued = new List<string>();
        using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(20)); // 50 ops/s: a session's steady stream
        for (var i = 0; i < HonestOps; i++)
        {
            await pace.WaitForNextTickAsync();
            var started = Stopwatch.GetTimestamp();
            var op = await writer.PutAsync("turns", "t" + i.ToString("D4", CultureInfo.InvariantCulture), value);
            enqueued.Add(op.OpId);
            timed.Add(op.Acked.ContinueWith(t => (Stopwatch.GetElapsedTime(started), t.Result), TaskScheduler.Default));
        }
        var results = await Task.WhenAll(timed).WaitAsync(TimeSpan.FromSeconds(60));
        return (results.Select(r => r.Item1).ToList(), enqueued, results.Select(r => r.Item2).ToList());
    }

    /// <summary>The honest share's log, read from cursor 0, holds each enqueued op exactly once.</summary>
    private static async Task NothingLostOrDuplicatedAsync(ShareRpcClient client, string sturdyRef, List<string> enqueued)
    {
        var logged = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var e in client.SubscribeAsync(sturdyRef, fromCursor: 0, cancellationToken: cts.Token))
        {
            if (e.Op is { } op) logged.Add(op.Op.OpId);
            if (e.Heartbeat is not null && logged.Count >= enqueued.Count) break;
        }
        Assert.Equal(enqueued.Count, logged.Distinct().Count());
        Assert.Equal(enqueued, logged); // once each, in the order enqueued (one producer: seq order)
    }

    private static TimeSpan Percentile(List<TimeSpan> values, double p) => values.Order().ElementAt((int)Math.Ceiling(values.Count * p) - 1);
}
