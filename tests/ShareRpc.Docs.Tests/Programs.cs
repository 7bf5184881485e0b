using System.Diagnostics;

namespace ShareRpc.Docs.Tests;

public sealed record ProgramResult(int ExitCode, string Output, string Error, TimeSpan Elapsed)
{
    public string[] Lines => Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:0.0} s\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>Runs a built program (<c>dotnet X.dll args…</c>) to its end, with a deadline; its whole process tree is killed if it is missed.</summary>
public static class Programs
{
    public static async Task<ProgramResult> RunAsync(string dll, IEnumerable<string> args, int timeoutMs = 120_000, string? workDir = null, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(Repo.Dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? Repo.Root,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        return await RunAsync(psi, timeoutMs);
    }

    /// <summary>Runs <paramref name="psi"/> (stdout/stderr redirected) to its end; on a missed deadline kills its tree and returns exit -1.</summary>
    public static async Task<ProgramResult> RunAsync(ProcessStartInfo psi, int timeoutMs)
    {
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(timeoutMs);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return new ProgramResult(-1, await stdout, $"timed out after {timeoutMs} ms\n" + await stderr, clock.Elapsed);
        }

        return new ProgramResult(process.ExitCode, await stdout, await stderr, clock.Elapsed);
    }
}
