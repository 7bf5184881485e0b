using System.CommandLine;
using ShareRpc.Cli.Commands;

namespace ShareRpc.Cli;

/// <summary>The sharerpc command line.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("ShareRpc: exactly-once op streams over gRPC, with capabilities.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(ClientCommands.Create());
        root.Subcommands.Add(ClientCommands.Append());
        root.Subcommands.Add(ClientCommands.Tail());
        root.Subcommands.Add(ClientCommands.Outbox());
        root.Subcommands.Add(CapabilityCommands.Redeem());
        root.Subcommands.Add(CapabilityCommands.Snapshot());
        root.Subcommands.Add(CapabilityCommands.Delegate());
        root.Subcommands.Add(CapabilityCommands.Revoke());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(ChaosCommand.Create());

        // Every error of every command is handled here, once (issue 13, item 12): one line on stderr and a
        // non-zero exit (2 for usage, 130 when cancelled, else 1), never a stack trace (System.CommandLine's
        // default handler prints one).
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // A usage error: what is wrong, on one line (System.CommandLine would add the whole help text).
            var command = parsed.CommandResult.Command is RootCommand ? "sharerpc" : "sharerpc " + parsed.CommandResult.Command.Name;
            await Console.Error.WriteLineAsync($"sharerpc: {string.Join("; ", parsed.Errors.Select(e => Fold(e.Message)))} (see {command} --help)");
            return 2;
        }

        try
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("sharerpc: cancelled");
            return 130;
        }
        catch (Exception ex)
        {
            await Console.Error.WriteLineAsync("sharerpc: " + OneLine(ex));
            return 1;
        }
    }

    /// <summary>The error as one line: wrappers unwrapped (the cause says what happened), line breaks folded.</summary>
    internal static string OneLine(Exception ex)
    {
        while (ex is AggregateException { InnerExceptions.Count: 1 } or System.Reflection.TargetInvocationException && ex.InnerException is { } inner)
        {
            ex = inner;
        }

        var text = Fold(ex.Message);
        return ex is ArgumentException or FormatException or IOException or InvalidOperationException or Client.ShareRpcCallException
            ? text
            : $"{text} ({ex.GetType().Name})";
    }

    /// <summary>Line breaks folded into spaces (a choice of values, e.g. --outbox-engine's, comes one per line).</summary>
    private static string Fold(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
