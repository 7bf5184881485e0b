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

    [Fact]
    public async Task A_known_workload_moves_each_instrument_and_logs_each_event()
    {
        var serverLogs = new LogSink();
        var clientLogs = new LogSink();
        InProcessServer? server = null;
        var instance = "diagnostics-" + Guid.NewGuid().ToString("N");
        using var serverMetrics = new MeterCapture(ShareRpcServerDiagnostics.MeterName, () => server?.Instance);
        using var clientMetrics = new MeterCapture(ShareRpcClientDiagnostics.MeterName, () => instance);
        await using var _ = server = await InProcessServer.StartAsync(logs: serverLogs);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions
        {
            OutboxPath = _dir.File("o.db"), LoggerFactory = clientLogs.Factory, InstanceName = instance,
            InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(200),
        });
        var sturdy = await client.EnsureShareAsync(server.Address, "session-diagnostics");
        var liveRef = (await client.RedeemAsync(sturdy)).LiveRef;
        var writer = client.OpenWriter(sturdy);

        // 1. Three ops acked: applied on the server, acked on the client, an append stream open.
        for (var i = 0; i < 3; i++) await (await PutAsync(writer, i)).Acked;
        Assert.Equal(3.0, serverMetrics.Sum(ServerMetrics.Ops, "outcome=applied"));
        Assert.Equal(3.0, clientMetrics.Sum(ClientMetrics.Acked, "outcome=applied"));
        Assert.Equal(3, clientMetrics.Count(ClientMetrics.AckDuration));
        Assert.True(serverMetrics.Count(ServerMetrics.CommitDuration) >= 1);
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=append") == 1, s_wait, "one append stream open");

        // 2. The server restarts while four more ops are enqueued: they wait in the outbox (the pending
        // gauge says so), the sender reconnects with backoff, and all are acked once it is back.
        await server.RestartAsync(async () =>
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
        var reconnecting = await clientLogs.WaitForAsync(e => e.EventId.Id == 2001, s_wait);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, reconnecting.Level);
        await clientLogs.WaitForAsync(e => e.EventId.Id == 2002, s_wait); // Reconnected
        await serverLogs.WaitForAsync(e => e.EventId.Id == 1001, s_wait); // Draining, when the first server stopped
        await writer.DisposeAsync();
        await serverMetrics.WaitUntilAsync(m => m.Sum(ServerMetrics.Streams, "kind=append") == 0, s_wait, "no append stream open");

        // 3. A subscription of a delegated capability, fenced by revoking it.
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
        var fenced = await serverLogs.WaitForAsync(e => e.EventId.Id == 1020, s_wait);
        Assert.Contains(child.CapabilityId, fenced.Message, StringComparison.Ordinal);
        Assert.Single(serverLogs.WithId(1014)); // CapabilityRevoked

        // 4. The revoked ref is refused: counted by reason, logged once.
        await Assert.ThrowsAsync<ShareRpcCallException>(() => client.RedeemAsync(child.SturdyRef));
        Assert.True(serverMetrics.Sum(ServerMetrics.Refusals, "reason=revoked") >= 1);
        await serverLogs.WaitForAsync(e => e.EventId.Id == 1030 && e.Message.Contains("revoked", StringComparison.Ordinal), s_wait);

        // 5. Nothing logged holds a secret or a live ref.
        var everything = string.Join("\n", serverLogs.Entries.Concat(clientLogs.Entries).Select(e => e.Everything));
        Assert.DoesNotContain(liveRef, everything, StringComparison.Ordinal);
        foreach (var r in new[] { sturdy, child.SturdyRef })
        {
            Assert.DoesNotContain(r[(r.IndexOf('#', StringComparison.Ordinal) + 1)..], everything, StringComparison.Ordinal);
        }
    }
}
