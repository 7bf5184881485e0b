using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ShareRpc.Server;
using ShareRpc.Server.Hosting;

namespace ShareRpc.TestSupport;

/// <summary>An in-process ShareRpc server (<see cref="ShareRpcServerHost"/>) on 127.0.0.1 over a temp SQLite data dir, removed at dispose.</summary>
public sealed class InProcessServer : IAsyncDisposable
{
    private readonly Action<ShareRpcServerOptions>? _configure;
    private readonly ILoggerProvider? _logs;
    private ShareRpcServerHost _host;
    private string _instance;

    private InProcessServer(ShareRpcServerHost host, string dir, Action<ShareRpcServerOptions>? configure, ILoggerProvider? logs)
    {
        _host = host;
        DataDirectory = dir;
        _configure = configure;
        _logs = logs;
        _instance = Engine.Diagnostics.Metrics.Instance;
    }

    /// <summary>What clients dial: http://127.0.0.1:PORT.</summary>
    public string Address => _host.Address;

    /// <summary>Graceful stop (what SIGTERM does): health NOT_SERVING, streams drained.</summary>
    public Task StopAsync() => _host.StopAsync();

    public string DataDirectory { get; }

    /// <summary>The server's engine: its <c>sharerpc.instance</c> tag is <c>Engine.Diagnostics.Metrics.Instance</c>.</summary>
    internal ShareEngine Engine => _host.Services.GetRequiredService<ShareEngine>();

    /// <summary>
    /// The value of the <c>sharerpc.instance</c> tag on this server's measurements (a restart makes a
    /// new engine, with a new instance). Kept as a field: a MeterListener reads it from any thread,
    /// also while the host is down.
    /// </summary>
    public string Instance => Volatile.Read(ref _instance);

    /// <summary>Starts a server; heartbeats every 200 ms unless <paramref name="configure"/> says otherwise.</summary>
    /// <param name="logs">Where the server logs (every level), if anywhere.</param>
    public static async Task<InProcessServer> StartAsync(Action<ShareRpcServerOptions>? configure = null, int port = 0, string? dataDirectory = null, ILoggerProvider? logs = null)
    {
        var dir = dataDirectory ?? Directory.CreateTempSubdirectory("sharerpc-server-").FullName;
        return new InProcessServer(await StartHostAsync(configure, port, dir, logs), dir, configure, logs);
    }

    /// <summary>
    /// Stops the server (gracefully) and disposes its host, runs <paramref name="whileDown"/>, then
    /// starts a new server on the same port and data directory: a restart, as clients see one.
    /// </summary>
    public async Task RestartAsync(Func<Task>? whileDown = null)
    {
        var port = new Uri(Address).Port;
        await _host.StopAsync();
        await _host.DisposeAsync();
        SqliteConnection.ClearAllPools();
        if (whileDown is not null) await whileDown();
        _host = await StartHostAsync(_configure, port, DataDirectory, _logs);
        Volatile.Write(ref _instance, Engine.Diagnostics.Metrics.Instance);
    }

    private static async Task<ShareRpcServerHost> StartHostAsync(Action<ShareRpcServerOptions>? configure, int port, string dir, ILoggerProvider? logs)
    {
        return await ShareRpcServerHost.StartAsync(
            o =>
            {
                o.DataDirectory = dir;
                o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
                configure?.Invoke(o);
            },
            port: port,
            configureBuilder: logs is null ? null : b => b.Logging.SetMinimumLevel(LogLevel.Trace).AddProvider(logs));
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
