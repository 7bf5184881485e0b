using ShareRpc.Server;
using ShareRpc.Server.Hosting;
using ShareRpc.Server.Storage;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>An in-process ShareRpc server on 127.0.0.1 (any free port) over the real wire, with fault hooks.</summary>
public sealed class ChaosServer : IAsyncDisposable
{
    private readonly ShareRpcServerHost _host;

    private ChaosServer(ShareRpcServerHost host)
    {
        _host = host;
    }

    public string Address => _host.Address;

    public ShareEngine Engine => _host.Engine;

    /// <summary>Starts a server on <paramref name="dataDirectory"/>; <paramref name="fsync"/> false = synchronous=NORMAL.</summary>
    public static async Task<ChaosServer> StartAsync(string dataDirectory, ServerFaultHooks? faults, bool fsync = false, Action<ShareRpcServerOptions>? configure = null)
    {
        var host = await ShareRpcServerHost.StartAsync(o =>
        {
            o.DataDirectory = dataDirectory;
            o.FsyncEveryCommit = fsync;
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            if (faults is not null)
            {
                o.EnableFaultInjection(faults);
            }

            configure?.Invoke(o);
        }).ConfigureAwait(false);
        return new ChaosServer(host);
    }

    /// <summary>The share's whole log and head, read straight from storage (the reference the checker compares against).</summary>
    public async Task<(IReadOnlyList<LogEntry> Log, ulong Head, ulong Epoch)> ReadLogAsync(string shareId)
    {
        await using var reader = await Engine.Store.BeginReadAsync().ConfigureAwait(false);
        var share = await reader.GetShareAsync(shareId).ConfigureAwait(false) ?? throw new InvalidOperationException("no share " + shareId);
        var log = await reader.ReadLogAsync(share.RowId, 1, int.MaxValue).ConfigureAwait(false);
        return (log, share.Cursor, share.Epoch);
    }

    public ValueTask DisposeAsync() => _host.DisposeAsync();
}
