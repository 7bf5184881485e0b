using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using ShareRpc.Server;
using ShareRpc.Server.Hosting;
using ShareRpc.Wire;

namespace ShareRpc.Client.Tests;

/// <summary>An in-process ShareRpc server on 127.0.0.1 (port 0) over a temp SQLite data dir.</summary>
public sealed class InProcessServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private InProcessServer(WebApplication app, string dir, string address)
    {
        _app = app;
        DataDirectory = dir;
        Address = address;
    }

    public string Address { get; }

    public string DataDirectory { get; }

    public static async Task<InProcessServer> StartAsync(Action<ShareRpcServerOptions>? configure = null, int port = 0, string? dataDirectory = null)
    {
        var dir = dataDirectory ?? Directory.CreateTempSubdirectory("sharerpc-server-").FullName;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddShareRpcServer(o =>
        {
            o.DataDirectory = dir;
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            configure?.Invoke(o);
        });
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(IPAddress.Loopback, port));
        var app = builder.Build();
        app.MapShareRpc();
        await app.StartAsync();
        return new InProcessServer(app, dir, app.GetListeningAddresses().Single().ToString().TrimEnd('/'));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(DataDirectory, true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A temp dir for outbox files, removed at the end.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sharerpc-client-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Path, true);
        }
        catch (IOException)
        {
        }
    }
}
