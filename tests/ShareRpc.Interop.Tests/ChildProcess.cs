using System.Diagnostics;
using System.Text;

namespace ShareRpc.Interop.Tests;

/// <summary>The outcome of a finished child process.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    public string Describe() => $"exit code {ExitCode}\n--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";
}

/// <summary>Runs child processes for the interop tests.</summary>
public static class ChildProcess
{
    /// <summary>Runs to completion (killed, with its children, after <paramref name="timeout"/>).</summary>
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, string? workingDirectory = null)
    {
        using var process = new Process { StartInfo = CreateStartInfo(fileName, arguments, workingDirectory) };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            lock (stderr)
            {
                stderr.AppendLine($"[killed after {timeout.TotalSeconds:0}s]");
            }

            return new ProcessResult(-1, Snapshot(stdout), Snapshot(stderr));
        }

        // WaitForExitAsync also waits for the redirected streams to reach EOF.
        return new ProcessResult(process.ExitCode, Snapshot(stdout), Snapshot(stderr));
    }

    internal static ProcessStartInfo CreateStartInfo(string fileName, IEnumerable<string> arguments, string? workingDirectory)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        // Python: unbuffered output, so "listening on" arrives at once.
        info.Environment["PYTHONUNBUFFERED"] = "1";
        return info;
    }

    private static string Snapshot(StringBuilder sb)
    {
        lock (sb)
        {
            return sb.ToString();
        }
    }
}

/// <summary>A long-running child (a server) that announces its port with a "listening on PORT" line.</summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<int> _port = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServerProcess(Process process)
    {
        _process = process;
    }

    public int Port { get; private set; }

    /// <summary>Everything the process wrote so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts the process and waits for its "listening on PORT" line.</summary>
    public static async Task<ServerProcess> StartAsync(string fileName, IEnumerable<string> arguments, TimeSpan startTimeout, string? workingDirectory = null)
    {
        var process = new Process { StartInfo = ChildProcess.CreateStartInfo(fileName, arguments, workingDirectory), EnableRaisingEvents = true };
        var server = new ServerProcess(process);
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data, isStdout: true);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data, isStdout: false);
        process.Exited += (_, _) => server._port.TrySetException(
            new InvalidOperationException($"{fileName} exited before listening.\n{server.Output}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            server.Port = await server._port.Task.WaitAsync(startTimeout);
        }
        catch (TimeoutException)
        {
            await server.DisposeAsync();
            throw new InvalidOperationException($"{fileName} printed no 'listening on' line within {startTimeout.TotalSeconds:0}s.\n{server.Output}");
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    private void OnLine(string? line, bool isStdout)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        const string marker = "listening on ";
        if (isStdout && line.StartsWith(marker, StringComparison.Ordinal) && int.TryParse(line.AsSpan(marker.Length).Trim(), out var port))
        {
            _port.TrySetResult(port);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            // Already gone, or not killable: nothing more to do.
        }
        finally
        {
            _process.Dispose();
        }
    }
}
