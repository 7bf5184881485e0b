using Grpc.Core;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;
using ShareRpc.Chaos.Scenarios;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using ShareRpc.Server;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Chaos.Tests;

/// <summary>
/// Each fault point, alone, on one writer with one batch of three ops: the fault fires (it is in the history)
/// and the system still applies every op exactly once — with the status the fault explains.
/// </summary>
public sealed class FaultPointTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private sealed record Run(IReadOnlyList<OpOutcome> Outcomes, IReadOnlyList<string> Log, OpHistory History, TimeSpan Elapsed);

    /// <summary>One share, one writer whose first batch (3 ops) meets <paramref name="faults"/>; every op must end applied once.</summary>
    private async Task<Run> RunAsync(params ScheduledFault[] faults)
    {
        var history = new OpHistory();
        var schedule = new FaultSchedule(faults);
        var plan = new ServerFaultPlan(schedule, history);
        await using var server = await ChaosServer.StartAsync(_dir.File("server-" + Guid.NewGuid().ToString("N")), plan.Hooks);
        using var handler = new TransportFaultHandler("w", schedule, history);
        await using var client = new ShareRpcClient(ScenarioRunner.ClientOptions(_dir.File(Guid.NewGuid().ToString("N") + ".db"), handler, 3));
        var created = await client.CreateShareAsync(server.Address, "fault-point");
        plan.Arm();
        var writer = client.OpenWriter(created.SturdyRef);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var pending = new List<PendingOp>();
        for (var i = 0; i < 3; i++)
        {
            pending.Add(await writer.PutAsync("c", "k" + i, new byte[] { (byte)i }));
        }

        await writer.FlushAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        var outcomes = await Task.WhenAll(pending.Select(p => p.Acked));
        var elapsed = clock.Elapsed;
        var (log, _, _) = await server.ReadLogAsync(created.ShareId);
        Assert.Equal(pending.Select(p => p.OpId), log.Select(e => e.OpId)); // each once, in seq order
        Assert.All(outcomes, o => Assert.NotEqual(OpStatus.Rejected, o.Status));
        foreach (var f in faults)
        {
            Assert.Contains(history.Events, e => e.Type == EventType.Fault && e.What == f.Kind.Name());
        }

        return new Run(outcomes, log.Select(e => e.OpId).ToList(), history, elapsed);
    }

    private static ScheduledFault Client(string point, FaultKind kind, int delayMs = 0) => new("w", point, 0, kind, delayMs);

    private static ScheduledFault Server(string point, FaultKind kind, int delayMs = 0) => new("server", point, 0, kind, delayMs);

    [Fact]
    public async Task Client_drop_request_the_batch_never_arrives_and_the_resend_applies_it()
    {
        var run = await RunAsync(Client("request", FaultKind.DropRequest));
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Client_drop_response_after_commit_the_resend_gets_duplicate_with_the_first_cursor()
    {
        var run = await RunAsync(Client("response", FaultKind.DropResponse));
        Assert.Contains(run.Outcomes, o => o.Status == OpStatus.Duplicate);
        Assert.All(run.Outcomes, o => Assert.Equal((ulong)run.Log.ToList().IndexOf(o.OpId) + 1, o.Cursor));
    }

    [Fact]
    public async Task Client_reset_mid_batch_the_half_frame_is_discarded_and_the_resend_applies_it()
    {
        var run = await RunAsync(Client("request", FaultKind.ResetMidBatch));
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Client_delay_only_slows_the_batch()
    {
        var run = await RunAsync(Client("request", FaultKind.Delay, 150));
        Assert.True(run.Elapsed >= TimeSpan.FromMilliseconds(140), run.Elapsed.ToString());
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Client_send_twice_the_server_dedupes_and_the_client_skips_the_extra_ack()
    {
        var run = await RunAsync(Client("request", FaultKind.DuplicateBatch));
        Assert.Equal(3, run.Log.Distinct().Count());
    }

    [Fact]
    public async Task Client_stall_holds_the_ack_then_it_is_recorded()
    {
        var run = await RunAsync(Client("response", FaultKind.Stall, 300));
        Assert.True(run.Elapsed >= TimeSpan.FromMilliseconds(290), run.Elapsed.ToString());
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Server_fail_before_commit_nothing_applied_the_retry_applies_it()
    {
        var run = await RunAsync(Server("commit", FaultKind.FailBeforeCommit));
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
        Assert.Contains(run.History.Events, e => e.Type == EventType.Fault && e.What == "fail-before-commit");
    }

    [Fact]
    public async Task Server_die_after_commit_before_ack_the_resend_gets_duplicate()
    {
        var run = await RunAsync(Server("ack", FaultKind.DieAfterCommit));
        Assert.Contains(run.Outcomes, o => o.Status == OpStatus.Duplicate);
    }

    [Fact]
    public async Task Server_stall_ack_delays_the_ack_only()
    {
        var run = await RunAsync(Server("ack", FaultKind.StallAck, 300));
        Assert.True(run.Elapsed >= TimeSpan.FromMilliseconds(290), run.Elapsed.ToString());
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Server_reset_stream_before_queueing_nothing_applied_the_resend_applies_it()
    {
        var run = await RunAsync(Server("read", FaultKind.ResetStream));
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Storage_disk_full_on_commit_the_batch_fails_unavailable_and_is_applied_once_after()
    {
        var run = await RunAsync(Server("commit", FaultKind.DiskFull));
        Assert.All(run.Outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
    }

    [Fact]
    public async Task Storage_disk_full_a_unary_write_gets_unavailable_storage_and_nothing_is_made()
    {
        var history = new OpHistory();
        var plan = new ServerFaultPlan(new FaultSchedule([Server("commit", FaultKind.DiskFull)]), history);
        await using var server = await ChaosServer.StartAsync(_dir.File("server-unary"), plan.Hooks);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("unary.db") });
        var created = await client.CreateShareAsync(server.Address, "disk-full");
        plan.Arm();
        var e = await Assert.ThrowsAsync<ShareRpcCallException>(() => client.DelegateAsync(created.SturdyRef, [Right.Read]));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal("storage", e.Reason);
        Assert.Contains(history.Events, x => x.What == "disk-full");
        await using var reader = await server.Engine.Store.BeginReadAsync();
        var share = await reader.GetShareAsync(created.ShareId);
        Assert.Single(await reader.GetCapabilitiesAsync(share!.RowId)); // only the owner: the delegation rolled back
        Assert.Equal(ServerFaultPlan.SqliteFull, ServerFaultPlan.DiskFullException().SqliteErrorCode);
    }

    [Fact]
    public void Fault_hooks_are_off_by_default_and_only_code_switches_them_on()
    {
        var options = new ShareRpcServerOptions();
        Assert.Null(options.Faults);
        Assert.True(options.FsyncEveryCommit);
        Assert.Null(typeof(ShareRpcServerOptions).GetProperty(nameof(ShareRpcServerOptions.Faults))!.GetSetMethod()); // not bindable from configuration
        Assert.Null(new ShareRpcClientOptions().Faults);
        options.EnableFaultInjection(new ServerFaultHooks());
        Assert.NotNull(options.Faults);
    }
}
