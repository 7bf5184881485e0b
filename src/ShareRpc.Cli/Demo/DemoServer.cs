using System.Diagnostics;
using System.Globalization;
using ShareRpc.Chaos.Scenarios;

namespace ShareRpc.Cli.Demo;

/// <summary>
/// A real <c>sharerpc serve</c> child process (this same CLI) on a fixed loopback port and data
/// directory, so it can be SIGKILLed and started again on the same address and files.
/// </summary>
internal sealed class DemoServer : IAsyncDisposable
{
    private readonly string _host;
    private readonly string[] _prefix;
    private ChildProcess? _process;

    public DemoServer(string dataDirectory)
    {
        DataDirectory = dataDirectory;
        Port = ChildProcess.FreePort();
        (_host, _prefix) = CliCommand();
    }

    public string DataDirectory { get; }

    public int Port { get; }

    public string Address { get; private set; } = "";

    /// <summary>The command line, as a user would type it.</summary>
    public string CommandLine => $"sharerpc serve --port {Port.ToString(CultureInfo.InvariantCulture)} --data {DataDirectory}";

    /// <summary>Starts the process and waits for its "listening on" line; returns how long that took.</summary>
    public async Task<TimeSpan> StartAsync()
    {
        var sw = Stopwatch.StartNew();
        _process = ChildProcess.Start(_host, [.. _prefix, "serve", "--port", Port.ToString(CultureInfo.InvariantCulture), "--data", DataDirectory]);
        var line = await _process.WaitForLineAsync(l => l.StartsWith("listening on ", StringComparison.Ordinal), 60_000).ConfigureAwait(false);
        Address = line["listening on ".Length..].Trim();
        return sw.Elapsed;
    }

    /// <summary>SIGKILL: no drain, no flush, in-flight requests die with it.</summary>
    public async Task KillAsync()
    {
        if (_process is { } p)
        {
            await p.KillAsync().ConfigureAwait(false);
        }
    }

    /// <summary>SIGTERM and wait: the graceful stop a service manager does.</summary>
    public async Task<int> StopAsync()
    {
        if (_process is not { HasExited: false } p)
        {
            return 0;
        }

        p.Terminate();
        return await p.WaitForExitAsync(30_000).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { } p)
        {
            await p.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// How to run this CLI again: the apphost itself (<c>dotnet run</c>, an installed tool), or the
    /// dotnet host with this assembly (<c>dotnet sharerpc.dll</c>).
    /// </summary>
    private static (string Host, string[] Prefix) CliCommand()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        var dll = typeof(DemoServer).Assembly.Location;
        return string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.OrdinalIgnoreCase)
            ? (process, [dll])
            : (process, []);
    }
}
