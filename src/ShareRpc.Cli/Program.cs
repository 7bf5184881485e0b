using System.CommandLine;
using ShareRpc.Cli.Commands;

namespace ShareRpc.Cli;

/// <summary>The sharerpc command line.</summary>
internal static class Program
{
    public static Task<int> Main(string[] args)
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
        return root.Parse(args).InvokeAsync();
    }
}
