using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>A child process (the sharerpc CLI) with its output lines, killable with SIGKILL.</summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = new();
    private readonly SemaphoreSlim _newLine = new(0, int.MaxValue);

    private ChildProcess(Process process)
    {
        _process = process;
    }

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <c>dotnet CLI_DLL args…</c> (or CLI_DLL itself when it is an executable).</summary>
    public static ChildProcess Start(string cli, params string[] args)
    {
        var dll = cli.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var psi = new ProcessStartInfo(dll ? "dotnet" : cli)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (dll)
        {
            psi.ArgumentList.Add(cli);
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var p = new Process { StartInfo = psi };
        var child = new ChildProcess(p);
        p.OutputDataReceived += (_, e) => child.Add(e.Data);
        p.ErrorDataReceived += (_, e) => child.Add(e.Data is null ? null : "stderr: " + e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.StandardInput.Close();
        return child;
    }

    /// <summary>A free loopback port (bound, then released), for a server that restarts on the same port.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            _lines.Add(line);
        }

        _newLine.Release();
    }

    public async Task<string> WaitForLineAsync(Func<string, bool> match, int timeoutMs = 30_000)
    {
        var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            if (Lines.FirstOrDefault(match) is { } hit)
            {
                return hit;
            }

            if (_process.HasExited)
            {
                await Task.Delay(50).ConfigureAwait(false); // let the last lines arrive
                return Lines.FirstOrDefault(match) ?? throw new InvalidOperationException($"process exited ({_process.ExitCode}) without the line; output:\n{string.Join("\n", Lines.TakeLast(20))}");
            }

            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException($"no such line in {timeoutMs} ms; output:\n{string.Join("\n", Lines.TakeLast(20))}");
            }

            await _newLine.WaitAsync(100).ConfigureAwait(false);
        }
    }

    public async Task<int> WaitForExitAsync(int timeoutMs = 60_000)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM: what a service manager sends to stop a process gracefully.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", new[] { "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!;
        kill.WaitForExit();
    }

    /// <summary>SIGKILL (no clean-up, no flush) and wait for the exit.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                _process.Kill(entireProcessTree: false);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }

        await _process.WaitForExitAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        _process.Dispose();
    }
}
