using System.CommandLine;
using ShareRpc.Client.LiteDb;
using ShareRpc.Client.Outbox;

namespace ShareRpc.Cli.Commands;

/// <summary><c>--outbox-engine sqlite|litedb</c>: the engine that keeps an outbox file (docs/client.md, "Outbox stores").</summary>
internal static class OutboxEngineOption
{
    public const string Sqlite = "sqlite";
    public const string LiteDb = "litedb";

    public static Option<string> Create()
    {
        var option = new Option<string>("--outbox-engine")
        {
            Description = "The outbox's engine: sqlite (default; power-loss-safe, several processes may open it) or litedb (one process at a time). docs/client.md, \"Outbox stores\".",
            DefaultValueFactory = _ => Sqlite,
        };
        option.AcceptOnlyFromAmong(Sqlite, LiteDb);
        return option;
    }

    public static OutboxEngine Engine(string? name) => name == LiteDb ? new LiteDbOutboxEngine() : OutboxEngine.Sqlite;
}
