using Microsoft.Data.Sqlite;
using ShareRpc.Server;
using ShareRpc.Server.Hosting;

namespace ShareRpc.Client.Tests;

/// <summary>An in-process ShareRpc server on 127.0.0.1 over a temp SQLite data dir.</summary>
public sealed class InProcessServer : IAsyncDisposable
{
    private readonly ShareRpcServerHost _host;

    private InProcessServer(ShareRpcServerHost host, string dir)
    {
        _host = host;
        DataDirectory = dir;
    }

    public string Address => _host.Address;

    public string DataDirectory { get; }

    public static async Task<InProcessServer> StartAsync(Action<ShareRpcServerOptions>? configure = null, int port = 0, string? dataDirectory = null)
    {
        var dir = dataDirectory ?? Directory.CreateTempSubdirectory("sharerpc-server-").FullName;
        var host = await ShareRpcServerHost.StartAsync(
            o =>
            {
                o.DataDirectory = dir;
                o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
                configure?.Invoke(o);
            },
            port: port);
        return new InProcessServer(host, dir);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
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
