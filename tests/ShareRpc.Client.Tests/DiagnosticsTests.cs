using System.Text;
using ShareRpc.Client.Diagnostics;
using ShareRpc.Server.Diagnostics;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Both ends' log events (a LogSink) and metric values (a MeterCapture per meter, kept to this
/// test's server and client by their instance tags) after a workload the test drives: appends, a
/// server restart with ops waiting in the outbox, a subscription fenced by a revoke, a refused
/// redeem (docs/operate.md). And no secret or live ref in anything either end logged.
/// </summary>
public sealed class DiagnosticsTests : IDisposable
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Task<PendingOp> PutAsync(ShareWriter writer, int i) => writer.PutAsync("c", "k" + i, Encoding.UTF8.GetBytes("v" + i));

    /// <summary>A server and a client of this test, each with a log sink and a meter capture kept to its instance.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        public readonly LogSink ServerLogs = new();
        public readonly LogSink ClientLogs = new();
        public readonly string Instance = "diagnostics-" + Guid.NewGuid().ToString("N");
        public InProcessServer Server = null!;
        public ShareRpcClient Client = null!;
        public MeterCapture ServerMetrics = null!;
        public MeterCapture ClientMetrics = null!;

        public static async Task<Rig> StartAsync(string outbox)
        {
            var rig = new Rig();
            rig.ServerMetrics = new MeterCapture(ShareRpcServerDiagnostics.MeterName, () => rig.Server?.Instance);
            rig.ClientMetrics = new MeterCapture(ShareRpcClientDiagnostics.MeterName, () => rig.Instance);
            rig.Server = await InProcessServer.StartAsync(logs: rig.ServerLogs);
            rig.Client = new ShareRpcClient(new ShareRpcClientOptions
            {
                OutboxPath = outbox, LoggerFactory = rig.ClientLogs.Factory, InstanceName = rig.Instance,
                InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(200),
            });
            return rig;
        }

        /// <summary>Everything either end logged, for "never logged" checks.</summary>
        public string Everything => string.Join("\n", ServerLogs.Entries.Concat(ClientLogs.Entries).Select(e => e.Everything));

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
            ServerMetrics.Dispose();
            ClientMetrics.Dispose();
        }
    }

    [Fact]
    public async Task Appends_and_a_server_restart_move_the_op_ack_pending_and_reconnect_instruments_exactly()
    {
        await using var rig = await Rig.StartAsync(_dir.File("o.db"));
        var (serverMetrics, clientMetrics) = (rig.ServerMetrics, rig.ClientMetrics);
        var sturdy = await rig.Client.EnsureShareAsync(rig.Server.Address, "session-diagnostics");
        var writer = rig.Client.OpenWriter(sturdy);

        // Three ops acked: applied on the server, acked on the client, an append stream open.
        for (var i = 0; i < 3; i++) await (await PutAsync(writer, i)).Acked;
        Assert.Equal(3.0, serverMetrics.Sum(ServerMetrics.Ops, "outcome=applied"));
        Assert.Equal(3.0, clientMetrics.Sum(ClientMetrics.Acked, "outcome=applied"));
        Assert.Equal(3, clientMetrics.Count(ClientMetrics.AckDuration));
        Assert.True(serverMetrics.Count(ServerMetrics.CommitDuration) >= 1);
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=append") == 1, s_wait, "one append stream open");

        // The server restarts while four more ops are enqueued: they wait in the outbox (the pending
        // gauge says so), the sender reconnects with backoff, and all are acked once it is back.
        await rig.Server.RestartAsync(async () =>
        {
            for (var i = 3; i < 7; i++) await PutAsync(writer, i);
            await clientMetrics.WaitUntilAsync(m => m.Values(ClientMetrics.Pending).LastOrDefault() == 4, s_wait, "4 ops pending");
            await clientMetrics.WaitUntilAsync(m => m.Sum(ClientMetrics.Reconnects, "kind=append") >= 1, s_wait, "a reconnect");
            Assert.True(clientMetrics.Values(ClientMetrics.OldestPendingAge).Last() > 0);
        });
        await writer.FlushAsync().WaitAsync(s_wait);
        Assert.Equal(7.0, serverMetrics.Sum(ServerMetrics.Ops, "outcome=applied"));
        Assert.Equal(7, clientMetrics.Count(ClientMetrics.AckDuration));
        Assert.Equal(7.0, clientMetrics.Sum(ClientMetrics.Enqueued));
        await clientMetrics.WaitUntilAsync(m => m.Values(ClientMetrics.Pending).LastOrDefault() == 0, s_wait, "nothing pending");
        var reconnecting = await rig.ClientLogs.WaitForAsync(e => e.EventId.Id == 2001, s_wait);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, reconnecting.Level);
        await rig.ClientLogs.WaitForAsync(e => e.EventId.Id == 2002, s_wait); // Reconnected
        await rig.ServerLogs.WaitForAsync(e => e.EventId.Id == 1001, s_wait); // Draining, when the first server stopped
        await writer.DisposeAsync();
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=append") == 0, s_wait, "no append stream open");
    }

    [Fact]
    public async Task A_revoke_fences_an_open_subscription_and_nothing_logged_holds_a_secret()
    {
        await using var rig = await Rig.StartAsync(_dir.File("o.db"));
        var (client, serverMetrics) = (rig.Client, rig.ServerMetrics);
        var sturdy = await client.EnsureShareAsync(rig.Server.Address, "session-fence");
        var liveRef = (await client.RedeemAsync(sturdy)).LiveRef;
        await using (var writer = client.OpenWriter(sturdy)) await (await PutAsync(writer, 0)).Acked;

        // A subscription of a delegated capability, fenced by revoking it.
        var child = await client.DelegateAsync(sturdy, [Right.Read]);
        using var stop = new CancellationTokenSource(s_wait);
        var subscription = Task.Run(async () =>
        {
            await foreach (var e in client.SubscribeAsync(child.SturdyRef, 0, false, stop.Token)) { }
        });
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=subscribe") == 1, s_wait, "one subscribe stream open");
        await client.RevokeAsync(sturdy, child.CapabilityId);
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Fenced, "kind=subscribe") == 1, s_wait, "the subscription fenced");
        await Assert.ThrowsAnyAsync<Exception>(() => subscription);
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=subscribe") == 0, s_wait, "no subscribe stream open");
        var fenced = await rig.ServerLogs.WaitForAsync(e => e.EventId.Id == 1020, s_wait);
        Assert.Contains(child.CapabilityId, fenced.Message, StringComparison.Ordinal);
        Assert.Single(rig.ServerLogs.WithId(1014)); // CapabilityRevoked

        // The revoked ref is refused: counted by reason, logged.
        await Assert.ThrowsAsync<ShareRpcCallException>(() => client.RedeemAsync(child.SturdyRef));
        Assert.True(serverMetrics.Sum(ServerMetrics.Refusals, "reason=revoked") >= 1);
        await rig.ServerLogs.WaitForAsync(e => e.EventId.Id == 1030 && e.Message.Contains("revoked", StringComparison.Ordinal), s_wait);

        // Nothing either end logged (every level) holds a secret or a live ref.
        var everything = rig.Everything;
        Assert.DoesNotContain(liveRef, everything, StringComparison.Ordinal);
        foreach (var r in new[] { sturdy, child.SturdyRef })
        {
            Assert.DoesNotContain(r[(r.IndexOf('#', StringComparison.Ordinal) + 1)..], everything, StringComparison.Ordinal);
        }
    }
}
