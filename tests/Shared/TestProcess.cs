using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ShareRpc.TestSupport;

/// <summary>The outcome of a child process run to completion.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>Everything, for an assertion message.</summary>
    public string Describe() => $"exit code {ExitCode}\n--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";
}

/// <summary>
/// A child process of a test: a built program (<c>dotnet X.dll</c>), python, node, buf, bash.
/// Long-running ones (servers) are started with <see cref="Start(string, string[])"/> and watched
/// line by line; one-shot ones run to completion with <see cref="RunAsync"/>.
/// </summary>
public sealed class TestProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly SemaphoreSlim _newLine = new(0, int.MaxValue);

    private TestProcess(Process process) => _process = process;

    /// <summary>stdout lines, and stderr lines prefixed with "stderr: ", in arrival order.</summary>
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

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>The last lines of output, for assertion messages.</summary>
    public string Tail(int lines = 30) => string.Join("\n", Lines.TakeLast(lines));

    /// <summary>Starts <paramref name="program"/> (a .dll runs under <c>dotnet</c>) with stdin closed.</summary>
    public static TestProcess Start(string program, params string[] args) => Start(program, args, workingDirectory: null);

    /// <summary>Starts <paramref name="program"/> in <paramref name="workingDirectory"/>, with extra environment variables.</summary>
    public static TestProcess Start(string program, IEnumerable<string> args, string? workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var p = new Process { StartInfo = StartInfo(program, args, workingDirectory, environment) };
        var child = new TestProcess(p);
        p.OutputDataReceived += (_, e) => child.Add(e.Data);
        p.ErrorDataReceived += (_, e) => child.Add(e.Data is null ? null : "stderr: " + e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.StandardInput.Close();
        return child;
    }

    /// <summary>Runs <paramref name="program"/> to completion; killed (with its children) after <paramref name="timeout"/>, exit code -1.</summary>
    public static async Task<ProcessResult> RunAsync(string program, IEnumerable<string> args, TimeSpan timeout, string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null, string? standardInput = null)
    {
        var info = StartInfo(program, args, workingDirectory, environment);
        using var process = new Process { StartInfo = info };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
        }

        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Append(stderr, $"[killed after {timeout.TotalSeconds:0} s]");
            return new ProcessResult(-1, Snapshot(stdout), Snapshot(stderr));
        }

        // WaitForExitAsync also waits for the redirected streams to reach EOF.
        return new ProcessResult(process.ExitCode, Snapshot(stdout), Snapshot(stderr));
    }

    /// <summary>The first line that matches; fails with the output when the process exits or <paramref name="timeout"/> (default 30 s) passes first.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (Lines.FirstOrDefault(match) is { } hit)
            {
                return hit;
            }

            if (_process.HasExited)
            {
                // The exit can overtake the last lines: WaitForExit drains the redirected streams.
                await _process.WaitForExitAsync();
                return Lines.FirstOrDefault(match) ?? throw new InvalidOperationException($"process exited ({_process.ExitCode}) without the line; output:\n{Tail()}");
            }

            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"no such line in {limit.TotalSeconds:0.#} s; output:\n{Tail()}");
            }

            await _newLine.WaitAsync(TimeSpan.FromMilliseconds(100));
        }
    }

    /// <summary>Waits for the exit (default 60 s) and returns the exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM: what a service manager sends to stop a process gracefully.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    /// <summary>SIGKILL (no clean-up, no flush) and wait for the exit.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }

        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    private static ProcessStartInfo StartInfo(string program, IEnumerable<string> args, string? workingDirectory, IReadOnlyDictionary<string, string>? environment)
    {
        var dll = program.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var info = new ProcessStartInfo(dll ? "dotnet" : program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        if (dll)
        {
            info.ArgumentList.Add(program);
        }

        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        // Python: unbuffered output, so "listening on" arrives at once.
        info.Environment["PYTHONUNBUFFERED"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        return info;
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

    private static void Append(StringBuilder sb, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (sb)
        {
            sb.AppendLine(line);
        }
    }

    private static string Snapshot(StringBuilder sb)
    {
        lock (sb)
        {
            return sb.ToString();
        }
    }
}
