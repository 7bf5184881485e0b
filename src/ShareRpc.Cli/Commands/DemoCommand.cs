using System.CommandLine;
using ShareRpc.Cli.Demo;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc demo</c>: the agent-handoff story on loopback with the embedded SQLite default
/// (docs/guides/agent-handoff.md) — a real server process killed and restarted mid-stream, a
/// handoff fenced by revocation, a read-only viewer — ending with
/// <c>verified: N ops, 0 lost, 0 duplicated</c> from comparing what was enqueued with the
/// server's log. Exit 0 when verified, 1 when the comparison fails, 2 when the demo itself fails.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var turns = new Option<int>("--turns") { Description = "Agent turns in all (A about two thirds, B the rest); 14 ops each.", DefaultValueFactory = _ => 48 };
        var keep = new Option<DirectoryInfo?>("--dir") { Description = "Keep the server data and the agents' outboxes here (default: a temp dir, removed)." };
        var keepServing = new Option<string?>("--keep-serving")
        {
            Description = "After the verdict, keep the server up for this long (default 10m; 90s, 30m, 1h) so a person can open the printed viewer link.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        // Test hooks for the verifier itself (tests/ShareRpc.Docs.Tests): they change only the
        // comparison's view of the log, so a working verifier must then fail the run.
        var hide = new Option<ulong>("--test-hide-logged-op") { Description = "Test hook: leave the op at this cursor out of the log the verifier reads.", Hidden = true };
        var twice = new Option<ulong>("--test-double-logged-op") { Description = "Test hook: show the op at this cursor twice in the log the verifier reads.", Hidden = true };
        var command = new Command("demo", "An agent's session shared live: a server crash survived, a handoff fenced by revocation, then every op verified.")
        {
            turns, keep, keepServing, hide, twice,
        };
        command.SetAction(async (parse, ct) =>
        {
            DemoOptions options;
            try
            {
                options = new DemoOptions(Math.Max(6, parse.GetValue(turns)), parse.GetValue(keep)?.FullName, parse.GetValue(hide), parse.GetValue(twice))
                {
                    // Off unless asked (tests never wait); asked without a value: 10 minutes.
                    KeepServing = parse.GetResult(keepServing) is null ? TimeSpan.Zero
                        : parse.GetValue(keepServing) is { } d ? CapabilityCommands.ParseDuration(d, "--keep-serving") : TimeSpan.FromMinutes(10),
                };
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine("sharerpc demo: " + e.Message);
                return 2;
            }

            try
            {
                return await new DemoRunner(options, Console.Out).RunAsync(ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Console.Error.WriteLine($"demo failed: {ex.GetType().Name}: {ex.Message}");
                return 2;
            }
        });
        return command;
    }
}
