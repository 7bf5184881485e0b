using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ShareRpc.Server;
using ShareRpc.Server.Hosting;
using ShareRpc.Server.Storage;
using ShareRpc.Wire;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>An in-process ShareRpc server on 127.0.0.1 (any free port) over the real wire, with fault hooks.</summary>
public sealed class ChaosServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ChaosServer(WebApplication app, string address)
    {
        _app = app;
        Address = address;
        Engine = app.Services.GetRequiredService<ShareEngine>();
    }

    public string Address { get; }

    public ShareEngine Engine { get; }

    /// <summary>Starts a server on <paramref name="dataDirectory"/>; <paramref name="fsync"/> false = synchronous=NORMAL.</summary>
    public static async Task<ChaosServer> StartAsync(string dataDirectory, ServerFaultHooks? faults, bool fsync = false, Action<ShareRpcServerOptions>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddShareRpcServer(o =>
        {
            o.DataDirectory = dataDirectory;
            o.FsyncEveryCommit = fsync;
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            if (faults is not null)
            {
                o.EnableFaultInjection(faults);
            }

            configure?.Invoke(o);
        });
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapShareRpc();
        await app.StartAsync().ConfigureAwait(false);
        return new ChaosServer(app, app.GetListeningAddresses().Single().ToString().TrimEnd('/'));
    }

    /// <summary>The share's whole log and head, read straight from storage (the reference the checker compares against).</summary>
    public async Task<(IReadOnlyList<LogEntry> Log, ulong Head, ulong Epoch)> ReadLogAsync(string shareId)
    {
        await using var reader = await Engine.Store.BeginReadAsync().ConfigureAwait(false);
        var share = await reader.GetShareAsync(shareId).ConfigureAwait(false) ?? throw new InvalidOperationException("no share " + shareId);
        var log = await reader.ReadLogAsync(share.RowId, 1, int.MaxValue).ConfigureAwait(false);
        return (log, share.Cursor, share.Epoch);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
