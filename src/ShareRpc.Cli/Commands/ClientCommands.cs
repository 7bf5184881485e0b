using System.CommandLine;
using System.Text;
using System.Text.Json.Nodes;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.Cli.Commands;

/// <summary><c>sharerpc create | append | tail | outbox</c> (append and outbox in files of their own).</summary>
internal static class ClientCommands
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "Server address, e.g. http://127.0.0.1:7878.", Required = true };
        var key = new Option<string>("--key") { Description = "Idempotency key for the share (e.g. the agent session id).", Required = true };
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file (holds the create intent and its secret).", Required = true };
        var title = new Option<string>("--title") { Description = "Share title.", DefaultValueFactory = _ => "" };
        var creator = new Option<string?>("--creator-token") { Description = "Creator token, if the server requires one." };
        var engine = OutboxEngineOption.Create();
        var command = new Command("create", "Create (or find again) the share for a key; prints its sturdy ref.") { server, key, outbox, title, creator, engine };
        var telemetryOptions = ClientTelemetry.Options.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            using var telemetry = ClientTelemetry.Start(parse, telemetryOptions);
            await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = parse.GetValue(outbox)!.FullName, OutboxEngine = OutboxEngineOption.Engine(parse.GetValue(engine)), CreatorToken = parse.GetValue(creator), LoggerFactory = telemetry.Loggers });
            var sturdy = await client.EnsureShareAsync(parse.GetValue(server)!, parse.GetValue(key)!, parse.GetValue(title)!, ct);
            Console.WriteLine(sturdy);
            return 0;
        });
        return command;
    }

    /// <summary><c>sharerpc append</c>: see <see cref="AppendCommand"/>.</summary>
    public static Command Append() => AppendCommand.Create();

    public static Command Tail()
    {
        var sturdyRef = new Option<string>("--ref") { Description = "Sturdy ref of the share (READ).", Required = true };
        var from = new Option<ulong>("--from") { Description = "First cursor (0: from the start).", DefaultValueFactory = _ => 0 };
        var count = new Option<long?>("--count") { Description = "Stop after this many ops." };
        var giveUp = new Option<double>("--give-up-seconds")
        {
            Description = "Give up (exit 1, the last error on stderr) after this many seconds without reaching the server; 0: never.",
            DefaultValueFactory = _ => 15,
        };
        var command = new Command("tail", "Print committed ops as JSON lines, then follow live ops.") { sturdyRef, from, count, giveUp };
        var telemetryOptions = ClientTelemetry.Options.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            using var telemetry = ClientTelemetry.Start(parse, telemetryOptions);
            // A dead server is a clear error in bounded time, not a silent wait (the SDK's default is to retry forever).
            var seconds = parse.GetValue(giveUp);
            await using var client = new ShareRpcClient(new ShareRpcClientOptions
            {
                LoggerFactory = telemetry.Loggers,
                SubscribeGiveUpAfter = seconds > 0 ? TimeSpan.FromSeconds(seconds) : Timeout.InfiniteTimeSpan,
            });
            long printed = 0;
            var limit = parse.GetValue(count);
            if (limit == 0)
            {
                return 0;
            }

            await foreach (var e in client.SubscribeAsync(parse.GetValue(sturdyRef)!, parse.GetValue(from), false, ct))
            {
                if (e.Op is not { } op)
                {
                    continue;
                }

                Console.WriteLine(ToJson(op));
                if (++printed == limit)
                {
                    break;
                }
            }

            return 0;
        });
        return command;
    }

    /// <summary><c>sharerpc outbox status | drop | retry</c>: see <see cref="OutboxCommands"/>.</summary>
    public static Command Outbox() => OutboxCommands.Create();

    internal static string ToJson(CommittedOp op)
    {
        var o = new JsonObject
        {
            ["cursor"] = op.Cursor,
            ["op_id"] = op.Op.OpId,
            ["producer_id"] = op.ProducerId,
            ["seq"] = op.Op.Seq,
            ["committed_at"] = op.CommittedAt?.ToDateTimeOffset().ToString("O"),
        };
        switch (op.Op.KindCase)
        {
            case Op.KindOneofCase.Put:
                o["op"] = "put";
                o["collection"] = op.Op.Put.Collection;
                o["key"] = op.Op.Put.Key;
                o["value"] = Encoding.UTF8.GetString(op.Op.Put.Value.Span);
                break;
            case Op.KindOneofCase.Delete:
                o["op"] = "delete";
                o["collection"] = op.Op.Delete.Collection;
                o["key"] = op.Op.Delete.Key;
                break;
            case Op.KindOneofCase.Append:
                o["op"] = "append";
                o["collection"] = op.Op.Append.Collection;
                o["key"] = op.Cursor.ToString(System.Globalization.CultureInfo.InvariantCulture);
                o["value"] = Encoding.UTF8.GetString(op.Op.Append.Value.Span);
                break;
        }

        return o.ToJsonString();
    }
}
