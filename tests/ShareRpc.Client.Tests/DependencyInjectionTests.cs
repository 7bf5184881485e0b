using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

public sealed class DependencyInjectionTests : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);
    private readonly TempDir _dir = new();
    private InProcessServer _server = null!;

    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task The_client_resolves_as_one_singleton_that_works_and_the_container_disposes_it()
    {
        var services = new ServiceCollection();
        services.AddShareRpcClient(o =>
        {
            o.OutboxPath = _dir.File("di.db");
            o.InitialBackoff = TimeSpan.FromMilliseconds(10);
        });
        services.AddShareRpcClient(o => o.MaxBackoff = TimeSpan.FromMilliseconds(300)); // a second call adds to the same options

        ShareRpcClient client;
        string sturdy;
        await using (var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true }))
        {
            client = provider.GetRequiredService<ShareRpcClient>();
            Assert.Same(client, provider.GetRequiredService<ShareRpcClient>());
            Assert.Same(provider.GetRequiredService<IOptionsMonitor<ShareRpcClientOptions>>().Get(ShareRpcClientServiceCollectionExtensions.DefaultName), client.Options);
            Assert.Same(client, provider.GetRequiredKeyedService<ShareRpcClient>(ShareRpcClientServiceCollectionExtensions.DefaultName));
            Assert.Equal((_dir.File("di.db"), TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(300)), (client.Options.OutboxPath, client.Options.InitialBackoff, client.Options.MaxBackoff));

            sturdy = await client.EnsureShareAsync(_server.Address, "di-session");
            var writer = client.OpenWriter(sturdy);
            var op = await writer.PutAsync("c", "k", new byte[] { 1 });
            Assert.Equal(OpStatus.Applied, (await op.Acked.WaitAsync(s_patience)).Status);
        }

        // Disposed with the container.
        Assert.Throws<ObjectDisposedException>(() => client.OpenWriter(sturdy));
    }

    [Fact]
    public async Task Invalid_options_fail_when_the_host_starts_naming_the_field()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddShareRpcClient(o =>
        {
            o.OutboxPath = _dir.File("bad.db");
            o.MaxInFlightBatches = 0;
            o.Outbox.MaxBatchOps = -1;
        });
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("ShareRpcClientOptions.MaxInFlightBatches must be > 0 (was 0).", ex.Failures);
        Assert.Contains("ShareRpcClientOptions.Outbox.MaxBatchOps must be > 0 (was -1).", ex.Failures);
        Assert.Contains("MaxInFlightBatches", ex.Message);

        // Resolving the client directly fails the same way (not with the constructor's generic error).
        var direct = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<ShareRpcClient>());
        Assert.Contains("ShareRpcClientOptions.MaxInFlightBatches must be > 0 (was 0).", direct.Failures);
    }

    [Fact]
    public async Task Valid_options_let_the_host_start()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddShareRpcClient(o => o.OutboxPath = _dir.File("ok.db"));
        using var host = builder.Build();
        await host.StartAsync();
        Assert.Equal(8, host.Services.GetRequiredService<ShareRpcClient>().Options.MaxInFlightBatches);
        await host.StopAsync();
    }

    [Fact]
    public async Task Handlers_added_on_the_returned_http_client_builder_carry_every_call_of_the_client()
    {
        var counter = new CountingHandler();
        var services = new ServiceCollection();
        services.AddShareRpcClient(o => o.OutboxPath = _dir.File("factory.db"))
            .AddHttpMessageHandler(() => counter); // IHttpClientFactory sets its inner handler, as for any named client

        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<ShareRpcClient>();
        var sturdy = await client.EnsureShareAsync(_server.Address, "factory-session");
        var writer = client.OpenWriter(sturdy);
        var op = await writer.PutAsync("c", "k", new byte[] { 1 });
        await writer.FlushAsync().WaitAsync(s_patience);
        Assert.Equal(OpStatus.Applied, (await op.Acked).Status);
        Assert.Contains(counter.Paths, p => p.EndsWith("/CreateShare", StringComparison.Ordinal));
        Assert.Contains(counter.Paths, p => p.EndsWith("/RedeemShare", StringComparison.Ordinal));
        Assert.Contains(counter.Paths, p => p.EndsWith("/AppendOps", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_primary_handler_configured_on_the_builder_replaces_the_tuned_one()
    {
        var primary = new CountingHandler { InnerHandler = new SocketsHttpHandler() };
        var services = new ServiceCollection();
        services.AddShareRpcClient(o => o.OutboxPath = _dir.File("primary.db"))
            .ConfigurePrimaryHttpMessageHandler(() => primary);

        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<ShareRpcClient>();
        var live = await client.RedeemAsync(await client.EnsureShareAsync(_server.Address, "primary-session"));
        Assert.Equal(0UL, live.Cursor);
        Assert.Contains(primary.Paths, p => p.EndsWith("/RedeemShare", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Named_clients_have_their_own_options_http_client_and_outbox()
    {
        var services = new ServiceCollection();
        var countA = new CountingHandler();
        var countB = new CountingHandler();
        services.AddShareRpcClient("agent-a", (o, _) => o.OutboxPath = _dir.File("a.db")).AddHttpMessageHandler(() => countA);
        services.AddShareRpcClient("agent-b", (o, _) => o.OutboxPath = _dir.File("b.db")).AddHttpMessageHandler(() => countB);

        await using var provider = services.BuildServiceProvider();
        var a = provider.GetRequiredKeyedService<ShareRpcClient>("agent-a");
        var b = provider.GetRequiredKeyedService<ShareRpcClient>("agent-b");
        Assert.NotSame(a, b);
        Assert.Equal((_dir.File("a.db"), _dir.File("b.db")), (a.Options.OutboxPath, b.Options.OutboxPath));
        Assert.Null(provider.GetService<ShareRpcClient>()); // no default client was registered

        await a.EnsureShareAsync(_server.Address, "named-a");
        Assert.Contains(countA.Paths, p => p.EndsWith("/CreateShare", StringComparison.Ordinal));
        Assert.Empty(countB.Paths);
    }

    [Fact]
    public async Task The_chaos_transport_fault_handler_plugs_in_with_AddHttpMessageHandler_and_no_op_is_lost_or_doubled()
    {
        // The first ack frame the server sends is dropped after the commit: the writer must replay, and get DUPLICATE.
        var history = new OpHistory();
        var schedule = new FaultSchedule([new ScheduledFault("w", "response", 0, FaultKind.DropResponse, 0)]);
        var services = new ServiceCollection();
        services.AddShareRpcClient(o =>
            {
                o.OutboxPath = _dir.File("faults.db");
                o.InitialBackoff = TimeSpan.FromMilliseconds(10);
            })
            .AddHttpMessageHandler(() => new TransportFaultHandler("w", schedule, history));

        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<ShareRpcClient>();
        var sturdy = await client.EnsureShareAsync(_server.Address, "faults-session");
        var writer = client.OpenWriter(sturdy);
        var ops = new List<PendingOp>();
        for (var i = 0; i < 3; i++) ops.Add(await writer.PutAsync("c", "k" + i, new byte[] { (byte)i }));
        await writer.FlushAsync().WaitAsync(s_patience);

        Assert.Contains(history.Events, e => e.Type == EventType.Fault && e.What == FaultKind.DropResponse.Name());
        var outcomes = await Task.WhenAll(ops.Select(o => o.Acked));
        Assert.Equal([1UL, 2UL, 3UL], outcomes.Select(o => o.Cursor).Order());
        Assert.Equal(3UL, (await client.RedeemAsync(sturdy)).Cursor); // applied once each: nothing twice
    }

    private sealed class CountingHandler : DelegatingHandler
    {
        private readonly List<string> _paths = new();

        public IReadOnlyList<string> Paths
        {
            get
            {
                lock (_paths)
                {
                    return _paths.ToArray();
                }
            }
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (_paths)
            {
                _paths.Add(request.RequestUri!.AbsolutePath);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}
