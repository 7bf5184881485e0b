using Microsoft.Extensions.Hosting;
using ShareRpc.Server.Diagnostics;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// Opens the engine (and so the store) when the host starts, so a store that cannot be opened fails
/// the start instead of the first call, and logs the server's life: started, draining (the moment
/// health turns NOT_SERVING, with the streams that will end), stopped (docs/server.md, "Drain").
/// </summary>
internal sealed class ShareRpcLifecycle(ShareEngine engine, IHostApplicationLifetime lifetime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var diagnostics = engine.Diagnostics;
        lifetime.ApplicationStarted.Register(() => ServerLog.ServerStarted(diagnostics.Logger, diagnostics.Metrics.Instance, StoreName(engine)));
        lifetime.ApplicationStopping.Register(() => ServerLog.Draining(diagnostics.Logger, diagnostics.Metrics.AppendStreams, diagnostics.Metrics.SubscribeStreams));
        lifetime.ApplicationStopped.Register(() => ServerLog.ServerStopped(diagnostics.Logger, diagnostics.Metrics.Instance, engine.Committer.Commits));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>"sqlite", "postgres": the store's type less its "ShareStore" suffix.</summary>
    private static string StoreName(ShareEngine engine) =>
        engine.Store.GetType().Name.Replace("ShareStore", "", StringComparison.Ordinal).ToLowerInvariant();
}
