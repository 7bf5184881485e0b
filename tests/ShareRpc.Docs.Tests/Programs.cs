using System.Diagnostics;
using ShareRpc.TestSupport;

namespace ShareRpc.Docs.Tests;

public sealed record ProgramResult(int ExitCode, string Output, string Error, TimeSpan Elapsed)
{
    public string[] Lines => Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:0.0} s\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>Runs a built program (<c>dotnet X.dll args…</c>) or a script to its end, with a deadline (<see cref="TestProcess.RunAsync"/>: its tree is killed if it is missed), timing it.</summary>
public static class Programs
{
    public static Task<ProgramResult> RunAsync(string dll, IEnumerable<string> args, int timeoutMs = 120_000, string? workDir = null, IReadOnlyDictionary<string, string>? env = null) =>
        RunAsync(dll, args, TimeSpan.FromMilliseconds(timeoutMs), workDir ?? Repo.Root, env);

    public static async Task<ProgramResult> RunAsync(string program, IEnumerable<string> args, TimeSpan timeout, string workDir, IReadOnlyDictionary<string, string>? env)
    {
        var clock = Stopwatch.StartNew();
        var run = await TestProcess.RunAsync(program, args, timeout, workDir, env);
        return new ProgramResult(run.ExitCode, run.StandardOutput, run.StandardError, clock.Elapsed);
    }
}
