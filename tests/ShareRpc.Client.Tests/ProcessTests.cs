using System.Text;
using Grpc.Core;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Client.Tests;

/// <summary>Crash tests against real <c>sharerpc serve</c> and <c>sharerpc append</c> processes.</summary>
public sealed class ProcessTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task<(TestProcess Server, string Address)> StartServerAsync(int port)
    {
        var server = TestProcess.Start(RepoPaths.CliDll, "serve", "--port", port.ToString(), "--data", _dir.File("server"));
        var line = await server.WaitForLineAsync(l => l.StartsWith("listening on ", StringComparison.Ordinal));
        return (server, line["listening on ".Length..]);
    }

    /// <summary>The whole log, read by subscribing from cursor 0 until the head is reached.</summary>
    internal static async Task<List<CommittedOp>> ReadLogAsync(ShareRpcClient client, string sturdy)
    {
        var head = (await client.RedeemAsync(sturdy)).Cursor;
        var log = new List<CommittedOp>();
        if (head == 0)
        {
            return log;
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var e in client.SubscribeAsync(sturdy, 0, false, cts.Token))
        {
            if (e.Op is { } op)
            {
                log.Add(op);
                if (op.Cursor == head)
                {
                    break;
                }
            }
        }

        return log;
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("litedb")]
    public async Task Server_killed_mid_stream_and_restarted_every_op_applied_once_in_seq_order(string engine)
    {
        var port = Ports.Free();
        var (server, address) = await StartServerAsync(port);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("outbox.db"), OutboxEngine = TestEngines.ByName(engine), InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(300) });
        var sturdy = await client.EnsureShareAsync(address, "session-server-kill");
        var writer = client.OpenWriter(sturdy);
        var pending = new List<PendingOp>();
        for (var i = 0; i < 3000; i++)
        {
            pending.Add(await writer.PutAsync("c", "k" + (i % 100), Encoding.UTF8.GetBytes("v" + i)));
            if (i == 1500)
            {
                // Mid-stream: some batches acked, some in flight, more being written.
                await server.KillAsync();
            }
        }

        // Everything after the kill was enqueued while the server was down.
        Assert.True(server.HasExited);
        await using var restarted = (await StartServerAsync(port)).Server;
        await writer.FlushAsync();

        var log = await ReadLogAsync(client, sturdy);
        Assert.Equal(pending.Count, log.Count);
        Assert.Equal(pending.Select(p => p.OpId), log.Select(l => l.Op.OpId));
        Assert.Equal(Enumerable.Range(1, log.Count).Select(i => (ulong)i), log.Select(l => l.Cursor));
        var outcomes = await Task.WhenAll(pending.Select(p => p.Acked));
        Assert.All(outcomes, o => Assert.Contains(o.Status, new[] { OpStatus.Applied, OpStatus.Duplicate }));
    }

    [Theory]
    [InlineData("--fault-hold-before-send", "fault: holding before send", "sqlite")]
    [InlineData("--fault-hold-before-ack", "fault: holding before ack", "sqlite")]
    [InlineData("--fault-hold-before-send", "fault: holding before send", "litedb")]
    [InlineData("--fault-hold-before-ack", "fault: holding before ack", "litedb")]
    public async Task Client_killed_then_restarted_on_the_same_outbox_finishes_each_op_once(string fault, string marker, string engine)
    {
        var (server, address) = await StartServerAsync(Ports.Free());
        await using var _ = server;
        var outbox = _dir.File("writer.db");
        var create = TestProcess.Start(RepoPaths.CliDll, "create", "--server", address, "--key", "session-client-kill", "--outbox", outbox, "--outbox-engine", engine);
        Assert.Equal(0, await create.WaitForExitAsync());
        var sturdy = create.Lines.Single(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));

        var input = _dir.File("ops.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(0, 200).Select(i => $"{{\"op\":\"put\",\"collection\":\"c\",\"key\":\"k{i}\",\"value\":\"v{i}\"}}"));
        await using (var first = TestProcess.Start(RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", outbox, "--file", input, fault, "--outbox-engine", engine))
        {
            await first.WaitForLineAsync(l => l.StartsWith(marker, StringComparison.Ordinal));
            await first.KillAsync();
        }

        // What the killed process made durable is the truth: every such op must be applied once.
        ulong enqueued;
        await using (var store = TestEngines.ByName(engine).Open(outbox))
        {
            enqueued = (await store.GetProducersAsync()).Single().NextSeq - 1;
        }

        Assert.True(enqueued > 0);
        await using var observer = new ShareRpcClient();
        var before = (await observer.RedeemAsync(sturdy)).Cursor;
        if (fault == "--fault-hold-before-send")
        {
            Assert.Equal(0UL, before); // killed before anything was sent
        }
        else
        {
            Assert.True(before > 0, "the server committed a batch whose ack the killed client never recorded");
        }

        // A new process on the same outbox: resumes what the dead one left, sends nothing new.
        var empty = _dir.File("empty.jsonl");
        await File.WriteAllTextAsync(empty, "");
        var second = TestProcess.Start(RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", outbox, "--file", empty, "--outbox-engine", engine);
        Assert.Equal(0, await second.WaitForExitAsync());

        var log = await ReadLogAsync(observer, sturdy);
        var n = (int)enqueued;
        Assert.Equal(n, log.Count);
        Assert.Equal(n, log.Select(l => l.Op.OpId).Distinct().Count());
        Assert.Equal(Enumerable.Range(1, n).Select(i => (ulong)i), log.Select(l => l.Op.Seq));
        Assert.Equal(Enumerable.Range(0, n).Select(i => "k" + i), log.Select(l => l.Op.Put.Key));
    }

    [Fact]
    public async Task Sigterm_drains_open_streams_end_unavailable_acked_ops_stay_and_the_process_exits_cleanly()
    {
        var port = Ports.Free();
        var (server, address) = await StartServerAsync(port);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("drain.db"), InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(200) });
        var sturdy = await client.EnsureShareAsync(address, "session-drain");
        var writer = client.OpenWriter(sturdy);
        var first = new List<PendingOp>();
        for (var i = 0; i < 100; i++)
        {
            first.Add(await writer.PutAsync("c", "k" + i, new byte[] { 1 }));
        }

        await writer.FlushAsync();

        // An open Subscribe stream, read with the plain generated client so its end status is visible.
        var live = await client.RedeemAsync(sturdy);
        using var channel = Channel(address);
        using var sub = Stub(channel).Subscribe(new SubscribeRequest { FromCursor = 0 }, Bearer(live.LiveRef));
        for (var i = 0; i < 100; i++)
        {
            Assert.True(await sub.ResponseStream.MoveNext());
        }

        server.Terminate();
        var ended = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await sub.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.Unavailable, ended.StatusCode);
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        // Restarted on the same data: everything acked before the drain is there, once.
        await using var restarted = (await StartServerAsync(port)).Server;
        Assert.Equal(100UL, (await client.RedeemAsync(sturdy)).Cursor);
    }

    [Fact]
    public async Task Cli_append_reports_outcomes_tail_prints_json_lines_and_outbox_status_reads_the_file()
    {
        var (server, address) = await StartServerAsync(Ports.Free());
        await using var _ = server;
        var outbox = _dir.File("cli.db");
        var create = TestProcess.Start(RepoPaths.CliDll, "create", "--server", address, "--key", "session-cli", "--outbox", outbox);
        Assert.Equal(0, await create.WaitForExitAsync());
        var sturdy = create.Lines.Single(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));

        var input = _dir.File("in.jsonl");
        await File.WriteAllLinesAsync(input, new[]
        {
            """{"op":"put","collection":"notes","key":"a","value":"hello"}""",
            """{"op":"append","collection":"log","value":{"n":1}}""",
            "",
            """{"op":"delete","collection":"notes","key":"a"}""",
        });
        var append = TestProcess.Start(RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", outbox, "--file", input);
        Assert.Equal(0, await append.WaitForExitAsync());
        Assert.Contains("applied 3, duplicate 0, rejected 0", append.Lines);

        var tail = TestProcess.Start(RepoPaths.CliDll, "tail", "--ref", sturdy, "--from", "2", "--count", "2");
        Assert.Equal(0, await tail.WaitForExitAsync());
        var json = tail.Lines.Where(l => l.StartsWith('{')).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(2, json.Length);
        Assert.Equal(("append", "log", "2", "{\"n\":1}"), (json[0].GetProperty("op").GetString(), json[0].GetProperty("collection").GetString(), json[0].GetProperty("key").GetString(), json[0].GetProperty("value").GetString()));
        Assert.Equal(("delete", 3UL), (json[1].GetProperty("op").GetString(), json[1].GetProperty("cursor").GetUInt64()));

        var status = TestProcess.Start(RepoPaths.CliDll, "outbox", "status", "--outbox", outbox);
        Assert.Equal(0, await status.WaitForExitAsync());
        Assert.Contains(status.Lines, l => l.Contains("pending 0,", StringComparison.Ordinal) && l.Contains("next seq 4", StringComparison.Ordinal));

        var bad = _dir.File("bad.jsonl");
        await File.WriteAllTextAsync(bad, """{"op":"upsert","collection":"c","key":"k"}""");
        var refused = TestProcess.Start(RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", outbox, "--file", bad);
        Assert.NotEqual(0, await refused.WaitForExitAsync());
        Assert.Contains(refused.Lines, l => l.Contains("line 1", StringComparison.Ordinal) && l.Contains("put, delete or append", StringComparison.Ordinal));
    }

    /// <summary>On LiteDB the second process waits for the first to close the file (one process per file).</summary>
    [Theory]
    [InlineData("sqlite")]
    [InlineData("litedb")]
    public async Task Ensure_share_from_two_processes_on_one_outbox_yields_one_share(string engine)
    {
        var (server, address) = await StartServerAsync(Ports.Free());
        await using var _ = server;
        var outbox = _dir.File("shared.db");
        var a = TestProcess.Start(RepoPaths.CliDll, "create", "--server", address, "--key", "session-two-procs", "--outbox", outbox, "--outbox-engine", engine);
        var b = TestProcess.Start(RepoPaths.CliDll, "create", "--server", address, "--key", "session-two-procs", "--outbox", outbox, "--outbox-engine", engine);
        Assert.Equal(0, await a.WaitForExitAsync());
        Assert.Equal(0, await b.WaitForExitAsync());
        var refA = a.Lines.Single(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));
        var refB = b.Lines.Single(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));
        Assert.Equal(refA, refB);
    }
}
