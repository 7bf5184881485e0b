using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Commands;

/// <summary><c>sharerpc create | append | tail | outbox status</c>.</summary>
internal static class ClientCommands
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "Server address, e.g. http://127.0.0.1:7878.", Required = true };
        var key = new Option<string>("--key") { Description = "Idempotency key for the share (e.g. the agent session id).", Required = true };
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file (holds the create intent and its secret).", Required = true };
        var title = new Option<string>("--title") { Description = "Share title.", DefaultValueFactory = _ => "" };
        var creator = new Option<string?>("--creator-token") { Description = "Creator token, if the server requires one." };
        var command = new Command("create", "Create (or find again) the share for a key; prints its sturdy ref.") { server, key, outbox, title, creator };
        command.SetAction(async (parse, ct) =>
        {
            await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = parse.GetValue(outbox)!.FullName, CreatorToken = parse.GetValue(creator) });
            var sturdy = await client.EnsureShareAsync(parse.GetValue(server)!, parse.GetValue(key)!, parse.GetValue(title)!, ct);
            Console.WriteLine(sturdy);
            return 0;
        });
        return command;
    }

    public static Command Append()
    {
        var sturdyRef = new Option<string>("--ref") { Description = "Sturdy ref of the share.", Required = true };
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file.", Required = true };
        var file = new Option<FileInfo?>("--file") { Description = "JSON lines to read (default: stdin)." };
        var holdBeforeSend = new Option<bool>("--fault-hold-before-send") { Description = "Fault injection: enqueue, then hold before anything is sent.", Hidden = true };
        var holdBeforeAck = new Option<bool>("--fault-hold-before-ack") { Description = "Fault injection: send, then hold every ack unrecorded.", Hidden = true };
        var command = new Command("append", """
            Enqueue ops from JSON lines {"op":"put"|"delete"|"append","collection":…,"key":…,"value":…}, wait for their acks,
            print "applied N, duplicate N, rejected N". Ops already in the outbox (from an earlier run) are sent too.
            """) { sturdyRef, outbox, file, holdBeforeSend, holdBeforeAck };
        command.SetAction(async (parse, ct) =>
        {
            var options = new ShareRpcClientOptions { OutboxPath = parse.GetValue(outbox)!.FullName };
            if (parse.GetValue(holdBeforeSend) || parse.GetValue(holdBeforeAck))
            {
                options.Faults = new ClientFaultHooks
                {
                    BeforeSend = parse.GetValue(holdBeforeSend) ? HoldAsync("before send") : null,
                    BeforeRecordAck = parse.GetValue(holdBeforeAck) ? HoldAsync("before ack") : null,
                };
            }

            await using var client = new ShareRpcClient(options);
            await client.ResumeAllAsync();
            var writer = client.OpenWriter(parse.GetValue(sturdyRef)!);
            using var input = parse.GetValue(file) is { } f ? new StreamReader(f.FullName) : new StreamReader(Console.OpenStandardInput());
            var acks = new List<Task<OpOutcome>>();
            string? line;
            var lineNo = 0;
            while ((line = await input.ReadLineAsync(ct)) is not null)
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                var op = ParseOp(line, lineNo);
                acks.Add((await writer.EnqueueAsync(op)).Acked);
                if (acks.Count % 10_000 == 0)
                {
                    Console.Error.WriteLine($"enqueued {acks.Count:N0}");
                }
            }

            Console.WriteLine($"enqueued {acks.Count}");
            Console.Out.Flush();
            var flush = writer.FlushAsync(ct);
            while (await Task.WhenAny(flush, Task.Delay(2000, ct)) != flush)
            {
                var p = await writer.GetProgressAsync();
                Console.Error.WriteLine($"pending {p.PendingOps:N0}{(p.LastError is null ? "" : ", last error: " + p.LastError)}");
            }

            await flush;
            var outcomes = await Task.WhenAll(acks);
            Console.WriteLine($"applied {outcomes.Count(o => o.Status == OpStatus.Applied)}, duplicate {outcomes.Count(o => o.Status == OpStatus.Duplicate)}, rejected {outcomes.Count(o => o.Status == OpStatus.Rejected)}");
            return 0;
        });
        return command;
    }

    public static Command Tail()
    {
        var sturdyRef = new Option<string>("--ref") { Description = "Sturdy ref of the share (READ).", Required = true };
        var from = new Option<ulong>("--from") { Description = "First cursor (0: from the start).", DefaultValueFactory = _ => 0 };
        var count = new Option<long?>("--count") { Description = "Stop after this many ops." };
        var command = new Command("tail", "Print committed ops as JSON lines, then follow live ops.") { sturdyRef, from, count };
        command.SetAction(async (parse, ct) =>
        {
            await using var client = new ShareRpcClient();
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

    public static Command Outbox()
    {
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file.", Required = true };
        var status = new Command("status", "What is waiting in an outbox, per share.") { outbox };
        status.SetAction(async (parse, ct) =>
        {
            if (!parse.GetValue(outbox)!.Exists)
            {
                Console.Error.WriteLine($"no outbox at {parse.GetValue(outbox)!.FullName}");
                return 2;
            }

            await using var store = OutboxStore.Open(parse.GetValue(outbox)!.FullName);
            foreach (var p in await store.GetProducersAsync())
            {
                var s = await store.GetStatusAsync(p.ShareId);
                var age = s.OldestPendingEnqueuedAt is { } t ? $"{(DateTimeOffset.UtcNow - t).TotalSeconds:0.0}s" : "-";
                Console.WriteLine($"share {p.ShareId}: pending {s.PendingOps}, sealed batches {s.SealedBatches}, rejected {s.RejectedOps}, next seq {p.NextSeq}, acked seq {p.AckedSeq}, oldest pending {age}{(s.StoppedReason is null ? "" : ", stopped: " + s.StoppedReason)}");
            }

            return 0;
        });
        return new Command("outbox", "Inspect an outbox file.") { status };
    }

    internal static Op ParseOp(string line, int lineNo)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(line);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"line {lineNo}: not JSON ({ex.Message})");
        }

        string Str(string name, bool required = true) =>
            node?[name]?.GetValue<string>() ?? (required ? throw new FormatException($"line {lineNo}: \"{name}\" is missing") : "");

        ByteString Value() => node?["value"] switch
        {
            null => ByteString.Empty,
            JsonValue v when v.TryGetValue<string>(out var s) => ByteString.CopyFromUtf8(s),
            var other => ByteString.CopyFromUtf8(other.ToJsonString()),
        };

        var contentType = node?["value"] is JsonValue sv && sv.TryGetValue<string>(out _) ? "text/plain; charset=utf-8" : "application/json";
        return Str("op") switch
        {
            "put" => new Op { Put = new Put { Collection = Str("collection"), Key = Str("key"), Value = Value(), ContentType = contentType } },
            "delete" => new Op { Delete = new Delete { Collection = Str("collection"), Key = Str("key") } },
            "append" => new Op { Append = new Append { Collection = Str("collection"), Value = Value(), ContentType = contentType } },
            var other => throw new FormatException($"line {lineNo}: \"op\" must be put, delete or append, not \"{other}\""),
        };
    }

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

    private static Func<string, Task> HoldAsync(string where) => async what =>
    {
        Console.WriteLine($"fault: holding {where} ({what})");
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
    };
}
