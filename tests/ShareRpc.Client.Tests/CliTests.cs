using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 13, items 8–12 as the built CLI shows them: append checks the whole input and is
/// idempotent on rerun, poison ops are set aside and decided on, a damaged outbox and a dead server
/// are one clear line on stderr and a non-zero exit.
/// </summary>
public sealed class CliTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(90);
    private readonly TempDir _dir = new("cli-");

    public void Dispose() => _dir.Dispose();

    private static Task<ProcessResult> Cli(params string[] args) => TestProcess.RunAsync(RepoPaths.CliDll, args, s_timeout);

    private static string[] Stderr(ProcessResult r) => r.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string[] Stdout(ProcessResult r) => r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>The error is one line, "sharerpc: …", and no stack trace; the exit code is not 0 (nor -1: killed after the timeout).</summary>
    private static string OneErrorLine(ProcessResult r)
    {
        Assert.True(r.ExitCode is not 0 and not -1, r.Describe());
        var errors = Stderr(r).Where(l => !l.StartsWith("pending ", StringComparison.Ordinal) && !l.StartsWith("enqueued ", StringComparison.Ordinal)).ToArray();
        Assert.True(errors.Length == 1, r.Describe());
        Assert.StartsWith("sharerpc: ", errors[0]);
        Assert.DoesNotContain(" at ShareRpc.", r.StandardError);
        return errors[0];
    }

    private async Task<string> CreateAsync(string server, string key, string outbox)
    {
        var create = await Cli("create", "--server", server, "--key", key, "--outbox", outbox);
        Assert.True(create.ExitCode == 0, create.Describe());
        return Stdout(create).Single(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));
    }

    private static string Line(int i, string collection = "c") => $$"""{"op":"put","collection":"{{collection}}","key":"k{{i}}","value":"v{{i}}"}""";

    [Fact]
    public async Task Append_checks_the_whole_input_first_and_a_rerun_of_the_same_file_applies_nothing_twice()
    {
        await using var server = await ServeProcess.StartAsync(_dir.File("server"));
        var outbox = _dir.File("agent.db");
        var sturdy = await CreateAsync(server.Address, "session-rerun", outbox);
        var input = _dir.File("ops.jsonl");

        // Line 3 is bad: nothing of the file is enqueued (lines 1 and 2 used to be applied already).
        await File.WriteAllLinesAsync(input, [Line(1), Line(2), Line(3, collection: ""), Line(4)]);
        var refused = await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", input);
        Assert.Equal("sharerpc: line 3: put.collection: must not be empty", OneErrorLine(refused));
        await using var observer = new ShareRpcClient();
        Assert.Equal(0UL, (await observer.RedeemAsync(sturdy)).Cursor);

        await File.WriteAllLinesAsync(input, [Line(1), Line(2), Line(3), Line(4)]);
        var first = await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", input);
        Assert.Contains("applied 4, duplicate 0, rejected 0", Stdout(first));

        // The same file again: every op id is the same, nothing is applied twice.
        var again = await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", input);
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Contains("applied 0, duplicate 4, rejected 0", Stdout(again));

        // One more line, and an explicit op_id: only the new ones are applied.
        await File.AppendAllLinesAsync(input, [Line(5), """{"op":"delete","collection":"c","key":"k1","op_id":"my-op-6"}"""]);
        var grown = await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", input);
        Assert.Contains("applied 2, duplicate 4, rejected 0", Stdout(grown));

        // From another outbox (the ops compacted away, or a copy of the job elsewhere): the server says DUPLICATE.
        var elsewhere = await Cli("append", "--ref", sturdy, "--outbox", _dir.File("other.db"), "--file", input);
        Assert.Contains("applied 0, duplicate 6, rejected 0", Stdout(elsewhere));

        var log = await ProcessTests.ReadLogAsync(observer, sturdy);
        Assert.Equal(6, log.Count);
        Assert.Equal(6, log.Select(l => l.Op.OpId).Distinct().Count());
        Assert.Equal("my-op-6", log[^1].Op.OpId);
        // Derived ids are UUIDv8 that ascend with the line number (the server's op-id index grows at one end).
        var derived = log.Take(5).Select(l => l.Op.OpId).ToArray();
        Assert.All(derived, id => Assert.Equal(8, Guid.Parse(id).Version));
        Assert.Equal(derived.Order(StringComparer.Ordinal), derived);
    }

    [Fact]
    public async Task Poison_ops_are_set_aside_listed_by_outbox_status_and_dropped_or_retried()
    {
        var port = Ports.Free();
        var data = _dir.File("tight-server");
        var tight = await InProcessServer.StartAsync(o => o.Limits.MaxValueBytes = 100, port, data);
        var outbox = _dir.File("poison.db");
        var sturdy = await CreateAsync(tight.Address, "session-cli-poison", outbox);
        var big = new string('x', 200);
        var input = _dir.File("poison.jsonl");
        await File.WriteAllLinesAsync(input,
        [
            Line(1),
            $$"""{"op":"put","collection":"c","key":"big-1","value":"{{big}}","op_id":"big-1"}""",
            Line(3),
            $$"""{"op":"append","collection":"c","value":"{{big}}","op_id":"big-2"}""",
            Line(5),
        ]);

        var append = await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", input);
        Assert.Contains("applied 3, duplicate 0, rejected 0, set aside 2", Stdout(append));
        Assert.Contains("2 ops were set aside", OneErrorLine(append));

        var status = await Cli("outbox", "status", "--outbox", outbox);
        Assert.True(status.ExitCode == 0, status.Describe());
        Assert.Contains(Stdout(status), l => l.Contains("pending 0,", StringComparison.Ordinal) && l.EndsWith("poison ops 2", StringComparison.Ordinal));
        Assert.Contains(Stdout(status), l => l.StartsWith("poison op big-1 (seq 2, put c/big-1, 200 bytes): ResourceExhausted (limit): ops[", StringComparison.Ordinal)
            && l.Contains("put.value: 200 bytes exceeds MaxValueBytes = 100 bytes", StringComparison.Ordinal));

        Assert.Equal("dropped big-1", Stdout(await Cli("outbox", "drop", "--outbox", outbox, "--op-id", "big-1")).Single());
        Assert.Equal("sharerpc: no op big-1 is set aside in " + outbox, OneErrorLine(await Cli("outbox", "drop", "--outbox", outbox, "--op-id", "big-1")));
        Assert.Equal("enqueued big-2 again at seq 6", Stdout(await Cli("outbox", "retry", "--outbox", outbox, "--op-id", "big-2")).Single());

        // The server's limit is raised; the next append on the outbox sends the retried op, at the end.
        await tight.StopAsync();
        await using var loose = await InProcessServer.StartAsync(port: port, dataDirectory: data);
        var empty = _dir.File("empty.jsonl");
        await File.WriteAllTextAsync(empty, "");
        var resend = await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", empty);
        Assert.True(resend.ExitCode == 0, resend.Describe());
        await using var observer = new ShareRpcClient();
        var log = await ProcessTests.ReadLogAsync(observer, sturdy);
        Assert.Equal(["k1", "k3", "k5", "4"], log.Select(l => l.Op.KindCase == Sharerpc.V1.Op.KindOneofCase.Put ? l.Op.Put.Key : l.Cursor.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal("big-2", log[^1].Op.OpId);
        Assert.DoesNotContain(Stdout(await Cli("outbox", "status", "--outbox", outbox)), l => l.Contains("poison", StringComparison.Ordinal));
        await tight.DisposeAsync();
    }

    [Fact]
    public async Task A_damaged_outbox_is_one_error_line_naming_the_file_not_a_hang_or_a_fresh_start()
    {
        await using var server = await ServeProcess.StartAsync(_dir.File("server"));
        var outbox = _dir.File("held.db");
        var sturdy = await CreateAsync(server.Address, "session-cli-damaged", outbox);
        var input = _dir.File("ops.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 200).Select(i => Line(i)));

        // Enqueued, then held before anything is sent: the commits are in the -wal.
        var halfCopy = _dir.File("half-copy.db");
        await using (var held = TestProcess.Start(RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", outbox, "--file", input, "--fault-hold-before-send"))
        {
            await held.WaitForLineAsync(l => l.StartsWith("fault: holding before send", StringComparison.Ordinal));
            File.Copy(outbox, halfCopy);
            await held.KillAsync();
        }

        var empty = _dir.File("empty.jsonl");
        await File.WriteAllTextAsync(empty, "");
        var copied = OneErrorLine(await Cli("append", "--ref", sturdy, "--outbox", halfCopy, "--file", empty));
        Assert.Contains($"The outbox {halfCopy} is damaged: it was not closed cleanly and its write-ahead log {halfCopy}-wal is missing", copied);

        var zero = _dir.File("zero.db");
        await File.WriteAllBytesAsync(zero, []);
        Assert.Contains($"The outbox {zero} is damaged: it is empty (0 bytes)", OneErrorLine(await Cli("outbox", "status", "--outbox", zero)));

        // An op row lost from the real outbox (the file otherwise closed cleanly): the sender stops naming the
        // file and append exits (it used to print "pending 200" forever).
        await using (var store = Outbox.OutboxStore.Open(outbox))
        {
            using var cmd = store.Connection.CreateCommand();
            cmd.CommandText = "DELETE FROM ops WHERE seq = 100";
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        var lost = OneErrorLine(await Cli("append", "--ref", sturdy, "--outbox", outbox, "--file", empty));
        // The 200 ops were sealed into one batch before the hold: that batch is not sent with a gap.
        Assert.StartsWith($"sharerpc: DataLoss: The outbox {outbox} is damaged: batch ", lost);
        Assert.EndsWith("covers seqs 1..200, but the op row at seq 100 is missing. Nothing from it was sent.", lost);
        await using var observer = new ShareRpcClient();
        Assert.Equal(0UL, (await observer.RedeemAsync(sturdy)).Cursor);
    }

    [Fact]
    public async Task Every_cli_error_is_one_line_on_stderr_with_a_non_zero_exit_and_tail_to_a_dead_server_gives_up()
    {
        var dead = $"127.0.0.1:{Ports.Free()}";
        var deadRef = $"sharerpc://{dead}/share-x/cap-x#c2VjcmV0";

        Assert.Contains("--ref", OneErrorLine(await Cli("append", "--outbox", _dir.File("a.db"))));
        Assert.Contains("sturdy ref", OneErrorLine(await Cli("append", "--ref", "not-a-ref", "--outbox", _dir.File("a.db"))));
        Assert.Contains("Unavailable", OneErrorLine(await Cli("create", "--server", "http://" + dead, "--key", "k", "--outbox", _dir.File("c.db"))));
        var missing = _dir.File("no-such.jsonl");
        Assert.Contains(missing, OneErrorLine(await Cli("append", "--ref", deadRef, "--outbox", _dir.File("a.db"), "--file", missing)));

        await using (var server = await ServeProcess.StartAsync(_dir.File("server")))
        {
            var taken = await Cli("serve", "--port", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data", _dir.File("server-2"));
            Assert.Contains("address already in use", OneErrorLine(taken));
        }

        var tail = await Cli("tail", "--ref", deadRef, "--give-up-seconds", "2");
        var error = OneErrorLine(tail);
        Assert.StartsWith($"sharerpc: Unavailable: gave up on http://{dead} after ", error);
    }

    [Fact]
    public async Task Outbox_engine_is_chosen_with_a_flag_and_a_file_of_the_other_engine_is_one_error_line()
    {
        var lite = _dir.File("lite.db");
        await using (var store = TestEngines.ByName("litedb").Open(lite))
        {
            await store.EnsureProducerAsync(OutboxContractTests.Share, OutboxContractTests.Ref);
            await store.EnqueueAsync(OutboxContractTests.Share, OutboxContractTests.Put("a"));
        }

        var status = await Cli("outbox", "status", "--outbox", lite, "--outbox-engine", "litedb");
        Assert.True(status.ExitCode == 0, status.Describe());
        Assert.Contains("share share-1: pending 1,", status.StandardOutput);
        Assert.Contains($"The outbox {lite} is a litedb outbox, not a sqlite one", OneErrorLine(await Cli("outbox", "status", "--outbox", lite)));

        var sqlite = _dir.File("sqlite.db");
        await using (var store = TestEngines.ByName("sqlite").Open(sqlite))
        {
            await store.EnsureProducerAsync(OutboxContractTests.Share, OutboxContractTests.Ref);
        }

        Assert.Contains($"The outbox {sqlite} is a sqlite outbox, not a litedb one", OneErrorLine(await Cli("outbox", "status", "--outbox", sqlite, "--outbox-engine", "litedb")));
        Assert.Contains("'berkeleydb' not recognized. Must be one of: 'sqlite' 'litedb'", OneErrorLine(await Cli("outbox", "status", "--outbox", sqlite, "--outbox-engine", "berkeleydb")));
    }
}
