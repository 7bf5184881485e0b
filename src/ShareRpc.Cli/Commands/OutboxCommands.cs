using System.CommandLine;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc outbox status | drop | retry</c>: what waits in an outbox file, and the decision on a
/// poison op (docs/client.md, "Poison ops"). A damaged file is an error naming it (docs/client.md, "Integrity").
/// </summary>
internal static class OutboxCommands
{
    public static Command Create()
    {
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file.", Required = true };
        var engine = OutboxEngineOption.Create();
        var status = new Command("status", "What is waiting in an outbox, per share, and every poison op set aside.") { outbox, engine };
        status.SetAction(async (parse, ct) => await StatusAsync(parse.GetValue(outbox)!, OutboxEngineOption.Engine(parse.GetValue(engine))));
        return new Command("outbox", "Inspect an outbox file; drop or retry a poison op.") { status, Decide("drop"), Decide("retry") };
    }

    private static async Task<int> StatusAsync(FileInfo file, OutboxEngine engine)
    {
        if (!file.Exists)
        {
            Console.Error.WriteLine($"sharerpc: no outbox at {file.FullName}");
            return 2;
        }

        await using var store = engine.Open(file.FullName);
        var poison = await store.GetPoisonOpsAsync();
        foreach (var p in await store.GetProducersAsync())
        {
            var s = await store.GetStatusAsync(p.ShareId);
            var age = s.OldestPendingEnqueuedAt is { } t ? $"{(DateTimeOffset.UtcNow - t).TotalSeconds:0.0}s" : "-";
            Console.WriteLine($"share {p.ShareId}: pending {s.PendingOps}, sealed batches {s.SealedBatches}, rejected {s.RejectedOps}, next seq {p.NextSeq}, acked seq {p.AckedSeq}, oldest pending {age}"
                + (s.PoisonOps > 0 ? $", poison ops {s.PoisonOps}" : "") + (s.StoppedReason is null ? "" : ", stopped: " + s.StoppedReason));
            foreach (var op in poison.Where(o => o.ShareId == p.ShareId))
            {
                Console.WriteLine($"  poison op {op.OpId} (seq {op.Seq}, {Describe(op.Op)}): {op.Status}{(op.Reason is null ? "" : " (" + op.Reason + ")")}: {op.Detail}");
            }
        }

        if (poison.Count > 0)
        {
            Console.WriteLine($"{poison.Count} poison ops: sharerpc outbox drop|retry --outbox {file.FullName} --op-id ID");
        }

        return 0;
    }

    /// <summary>
    /// <c>drop</c>: the poison op is never sent. <c>retry</c>: it is enqueued again with the same op id
    /// at the end of its share's sequence, and goes with the next writer on this outbox (e.g. the next
    /// <c>sharerpc append</c>, which sends what the outbox holds).
    /// </summary>
    private static Command Decide(string verb)
    {
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file.", Required = true };
        var opId = new Option<string>("--op-id") { Description = "The poison op's id (see outbox status).", Required = true };
        var engine = OutboxEngineOption.Create();
        var command = new Command(verb, verb == "drop"
            ? "Drop a poison op: it is never sent."
            : "Enqueue a poison op again (same op id) at the end of its share's sequence; the next append on this outbox sends it.") { outbox, opId, engine };
        command.SetAction(async (parse, ct) =>
        {
            var file = parse.GetValue(outbox)!;
            var id = parse.GetValue(opId)!;
            if (!file.Exists)
            {
                throw new FileNotFoundException($"no outbox at {file.FullName}");
            }

            await using var store = OutboxEngineOption.Engine(parse.GetValue(engine)).Open(file.FullName);
            // The sender's lock: a process sending from this outbox decides through its own writer.
            store.AcquireWriterLock();
            if (verb == "drop")
            {
                Console.WriteLine(await store.DropPoisonOpAsync(id) ? $"dropped {id}" : throw NotSetAside(id, file));
            }
            else
            {
                var queued = await store.RetryPoisonOpAsync(id) ?? throw NotSetAside(id, file);
                Console.WriteLine($"enqueued {id} again at seq {queued.Seq}");
            }

            return 0;
        });
        return command;
    }

    private static ArgumentException NotSetAside(string opId, FileInfo file) => new($"no op {opId} is set aside in {file.FullName}");

    private static string Describe(Op op) => op.KindCase switch
    {
        Op.KindOneofCase.Put => $"put {op.Put.Collection}/{op.Put.Key}, {op.Put.Value.Length} bytes",
        Op.KindOneofCase.Delete => $"delete {op.Delete.Collection}/{op.Delete.Key}",
        Op.KindOneofCase.Append => $"append {op.Append.Collection}, {op.Append.Value.Length} bytes",
        _ => "no kind",
    };
}
