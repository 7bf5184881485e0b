using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ShareRpc.Client.DependencyInjection;
using ShareRpc.Protocol.V1;

namespace ShareRpc.Client.Tests;

public sealed class DependencyInjectionTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
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
            o.InitialBackoffMs = 10;
        });
        services.AddShareRpcClient(o => o.MaxBackoffMs = 300); // a second call adds to the same options

        ShareRpcClient client;
        string sturdy;
        await using (var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true }))
        {
            client = provider.GetRequiredService<ShareRpcClient>();
            Assert.Same(client, provider.GetRequiredService<ShareRpcClient>());
            Assert.Same(provider.GetRequiredService<IOptions<ShareRpcClientOptions>>().Value, client.Options);
            Assert.Equal((_dir.File("di.db"), 10, 300), (client.Options.OutboxPath, client.Options.InitialBackoffMs, client.Options.MaxBackoffMs));

            sturdy = await client.EnsureShareAsync(_server.Address, "di-session");
            var writer = client.OpenWriter(sturdy);
            var op = await writer.PutAsync("c", "k", new byte[] { 1 });
            Assert.Equal(OpStatus.Applied, (await op.Acked.WaitAsync(Patience)).Status);
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
    public async Task A_handler_from_IHttpClientFactory_carries_the_calls()
    {
        var counter = new CountingHandler();
        var services = new ServiceCollection();
        services.AddHttpClient("sharerpc")
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { EnableMultipleHttp2Connections = true })
            .AddHttpMessageHandler(() => counter);
        services.AddShareRpcClient((o, sp) =>
        {
            o.OutboxPath = _dir.File("factory.db");
            o.Channel.HttpHandler = sp.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler("sharerpc");
        });

        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<ShareRpcClient>();
        var sturdy = await client.EnsureShareAsync(_server.Address, "factory-session");
        var writer = client.OpenWriter(sturdy);
        var op = await writer.PutAsync("c", "k", new byte[] { 1 });
        await writer.FlushAsync().WaitAsync(Patience);
        Assert.Equal(OpStatus.Applied, (await op.Acked).Status);
        Assert.Contains(counter.Paths, p => p.EndsWith("/CreateShare", StringComparison.Ordinal));
        Assert.Contains(counter.Paths, p => p.EndsWith("/AppendOps", StringComparison.Ordinal));
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
