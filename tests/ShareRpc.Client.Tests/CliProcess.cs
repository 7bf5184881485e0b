using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ShareRpc.Client.Tests;

/// <summary>The real <c>sharerpc</c> CLI as a child process, with its output lines and a SIGKILL.</summary>
public sealed class CliProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = new();
    private readonly SemaphoreSlim _newLine = new(0, int.MaxValue);

    private CliProcess(Process process)
    {
        _process = process;
    }

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return _lines.ToArray();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public static string CliDll
    {
        get
        {
            // tests/ShareRpc.Client.Tests/bin/<Configuration>/net10.0/ → src/ShareRpc.Cli/bin/<Configuration>/net10.0/sharerpc.dll
            var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
            var configuration = baseDir.Parent!.Name;
            var root = baseDir;
            while (root is not null && !File.Exists(Path.Combine(root.FullName, "ShareRpc.sln")))
            {
                root = root.Parent;
            }

            var dll = Path.Combine(root!.FullName, "src", "ShareRpc.Cli", "bin", configuration, baseDir.Name, "sharerpc.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("Build src/ShareRpc.Cli first.", dll);
        }
    }

    public static CliProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(CliDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var p = new Process { StartInfo = psi };
        var cli = new CliProcess(p);
        p.OutputDataReceived += (_, e) => cli.Add(e.Data);
        p.ErrorDataReceived += (_, e) => cli.Add(e.Data is null ? null : "stderr: " + e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.StandardInput.Close();
        return cli;
    }

    /// <summary>A free loopback port (bound then released), for a server that must restart on the same port.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task<string> WaitForLineAsync(Func<string, bool> match, int timeoutMs = 60_000)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var found = Lines.FirstOrDefault(match);
            if (found is not null)
            {
                return found;
            }

            if (_process.HasExited)
            {
                // Output may still be draining.
                await _process.WaitForExitAsync();
                found = Lines.FirstOrDefault(match);
                return found ?? throw new InvalidOperationException($"process exited ({_process.ExitCode}) without the line; output:\n{string.Join('\n', Lines)}");
            }

            var left = timeoutMs - (int)sw.ElapsedMilliseconds;
            if (left <= 0)
            {
                throw new TimeoutException($"no matching line in {timeoutMs} ms; output:\n{string.Join('\n', Lines)}");
            }

            await _newLine.WaitAsync(Math.Min(left, 1000));
        }
    }

    public async Task<int> WaitForExitAsync(int timeoutMs = 120_000)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM: what a service manager sends to stop it gracefully.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", new[] { "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!;
        kill.WaitForExit();
    }

    /// <summary>SIGKILL: no cleanup, no flush, as a crash.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
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
}
