using System.CommandLine;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc append</c> (docs/client.md, "CLI append"): idempotent on rerun. The whole input is
/// read and checked first (nothing is enqueued from a file with a bad line), each op's id comes from
/// the input (its <c>op_id</c>, or derived from the share, the line number and the line), and the ops
/// are enqueued in bulk. Rerunning the same file enqueues nothing twice: ops still in the outbox are
/// found there, ops compacted away are sent again and the server answers DUPLICATE.
/// </summary>
internal static class AppendCommand
{
    // One bulk commit: ops (count) and their serialized size (bytes), whichever comes first.
    private const int ChunkOps = 4096;
    private const long ChunkBytes = 8L << 20;

    public static Command Create()
    {
        var sturdyRef = new Option<string>("--ref") { Description = "Sturdy ref of the share.", Required = true };
        var outbox = new Option<FileInfo>("--outbox") { Description = "Outbox file.", Required = true };
        var file = new Option<FileInfo?>("--file") { Description = "JSON lines to read (default: stdin)." };
        var holdBeforeSend = new Option<bool>("--fault-hold-before-send") { Description = "Fault injection: enqueue, then hold before anything is sent.", Hidden = true };
        var holdBeforeAck = new Option<bool>("--fault-hold-before-ack") { Description = "Fault injection: send, then hold every ack unrecorded.", Hidden = true };
        var command = new Command("append", """
            Enqueue ops from JSON lines {"op":"put"|"delete"|"append","collection":…,"key":…,"value":…[,"op_id":…]}, wait for
            their acks, print "applied N, duplicate N, rejected N". The whole input is checked before anything is enqueued; an op's
            id is its "op_id", else derived from the share, the line number and the line, so a rerun of the same input applies
            nothing twice. Ops already in the outbox (from an earlier run) are sent too.
            """) { sturdyRef, outbox, file, holdBeforeSend, holdBeforeAck };
        var engine = OutboxEngineOption.Create();
        command.Options.Add(engine);
        var telemetryOptions = ClientTelemetry.Options.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            using var telemetry = ClientTelemetry.Start(parse, telemetryOptions);
            var options = new ShareRpcClientOptions { OutboxPath = parse.GetValue(outbox)!.FullName, OutboxEngine = OutboxEngineOption.Engine(parse.GetValue(engine)), LoggerFactory = telemetry.Loggers };
            if (parse.GetValue(holdBeforeSend) || parse.GetValue(holdBeforeAck))
            {
                options.Faults = new ClientFaultHooks
                {
                    BeforeSend = parse.GetValue(holdBeforeSend) ? HoldAsync("before send") : null,
                    BeforeRecordAck = parse.GetValue(holdBeforeAck) ? HoldAsync("before ack") : null,
                };
            }

            return await RunAsync(parse.GetValue(sturdyRef)!, parse.GetValue(file), options, ct);
        });
        return command;
    }

    private static async Task<int> RunAsync(string sturdyRef, FileInfo? file, ShareRpcClientOptions options, CancellationToken ct)
    {
        var shareId = SturdyRef.Parse(sturdyRef).ShareId;
        using var reader = file is { } f ? new StreamReader(f.FullName) : new StreamReader(Console.OpenStandardInput());
        using var input = await AppendInput.ReadAsync(reader, shareId, options.Limits, ct);

        await using var client = new ShareRpcClient(options);
        // Ops acked before this run that it enqueues again were applied by an earlier run: duplicates now.
        var appliedBefore = (await client.Outbox.GetProducersAsync()).FirstOrDefault(p => p.ShareId == shareId)?.AckedSeq ?? 0;
        await client.ResumeAllAsync();
        var writer = client.OpenWriter(sturdyRef);
        var run = await EnqueueAsync(writer, input);
        Console.WriteLine($"enqueued {run.New}{(run.Found > 0 ? $" ({run.Found} already in the outbox from an earlier run)" : "")}");
        Console.Out.Flush();
        await FlushAsync(writer, ct);

        var counts = await client.Outbox.CountOutcomesAsync(shareId, run.Seqs.Ranges, appliedBefore);
        var setAside = counts.SetAside + run.SetAside;
        Console.WriteLine($"applied {counts.Applied}, duplicate {counts.Duplicate + run.Repeated}, rejected {counts.Rejected}"
            + (setAside > 0 ? $", set aside {setAside}" : "") + (counts.Unknown > 0 ? $", unknown {counts.Unknown}" : ""));
        if (setAside > 0)
        {
            Console.Error.WriteLine($"sharerpc: {setAside} ops were set aside, the server refuses them: see sharerpc outbox status --outbox {options.OutboxPath}");
            return 1;
        }

        return 0;
    }

    /// <summary>Where the input's ops went: the seqs whose outcomes count, and what was found already there.</summary>
    private sealed class Run
    {
        public SeqRanges Seqs { get; } = new();

        public long New { get; set; }

        /// <summary>Op ids an earlier run enqueued (their outcome is counted from the outbox).</summary>
        public long Found { get; set; }

        /// <summary>Op ids this input holds twice: the second is a duplicate.</summary>
        public long Repeated { get; set; }

        /// <summary>Op ids set aside here as poison ops: not enqueued again.</summary>
        public long SetAside { get; set; }

        public ulong FirstNew { get; set; } = ulong.MaxValue;

        public ulong HighestFound { get; set; }
    }

    private static async Task<Run> EnqueueAsync(ShareWriter writer, AppendInput input)
    {
        var run = new Run();
        foreach (var chunk in input.Chunks(ChunkOps, ChunkBytes))
        {
            foreach (var result in await writer.EnqueueBulkAsync(chunk))
            {
                switch (result.Outcome)
                {
                    case BulkOutcome.New:
                        run.New++;
                        run.FirstNew = Math.Min(run.FirstNew, result.Seq);
                        run.Seqs.Add(result.Seq);
                        break;
                    case BulkOutcome.InOutbox when result.Seq >= run.FirstNew || result.Seq <= run.HighestFound:
                        // Enqueued by this run already (or found once already): a line repeating an op id.
                        run.Repeated++;
                        break;
                    case BulkOutcome.InOutbox:
                        run.Found++;
                        run.HighestFound = result.Seq;
                        run.Seqs.Add(result.Seq);
                        break;
                    case BulkOutcome.SetAside:
                        run.SetAside++;
                        break;
                }
            }

            if (run.New + run.Found > 0 && (run.New + run.Found) % 100_000 < chunk.Count)
            {
                Console.Error.WriteLine($"enqueued {run.New + run.Found:N0} of {input.Count:N0}");
            }
        }

        return run;
    }

    /// <summary>Waits for every op in the outbox to be acked, rejected or set aside, reporting progress every 2 s.</summary>
    private static async Task FlushAsync(ShareWriter writer, CancellationToken ct)
    {
        var flush = writer.FlushAsync(ct);
        while (await Task.WhenAny(flush, Task.Delay(2000, ct)) != flush)
        {
            var p = await writer.GetProgressAsync();
            Console.Error.WriteLine($"pending {p.PendingOps:N0}{(p.LastError is null ? "" : ", last error: " + p.LastError)}");
        }

        await flush;
    }

    private static Func<string, Task> HoldAsync(string where) => async what =>
    {
        Console.WriteLine($"fault: holding {where} ({what})");
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
    };

    /// <summary>Seqs as inclusive ranges, merged while they come in order: a run's ops are a few ranges, not a million numbers.</summary>
    private sealed class SeqRanges
    {
        private readonly List<(ulong From, ulong To)> _ranges = [];

        public IReadOnlyList<(ulong From, ulong To)> Ranges => _ranges;

        public void Add(ulong seq)
        {
            if (_ranges.Count > 0 && _ranges[^1].To + 1 == seq)
            {
                _ranges[^1] = (_ranges[^1].From, seq);
            }
            else
            {
                _ranges.Add((seq, seq));
            }

        }
    }
}
