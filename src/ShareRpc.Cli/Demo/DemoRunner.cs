using System.Diagnostics;
using System.Globalization;
using ShareRpc.AgentSession;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.Cli.Demo;

/// <summary>What <c>sharerpc demo</c> was asked to do.</summary>
internal sealed record DemoOptions(int Turns, string? KeepDirectory, ulong HideLoggedCursor, ulong DoubleLoggedCursor)
{
    /// <summary>How long the server stays up after the verdict, so a person can open the viewer link (zero: not at all).</summary>
    public TimeSpan KeepServing { get; init; }
}

/// <summary>
/// The agent-handoff story (docs/guides/agent-handoff.md): a real server process; agent A shares
/// its session through its outbox; the server is SIGKILLed mid-stream and restarted, A's outbox
/// replays; A hands an append capability to agent B and A's own capability is revoked, so A is
/// fenced; B catches up from cursor 0 and carries on; a read-only viewer tails all of it; and the
/// end compares every enqueued op with the server's log.
/// </summary>
internal sealed class DemoRunner
{
    private readonly DemoOptions _options;
    private readonly TextWriter _out;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public DemoRunner(DemoOptions options, TextWriter output)
    {
        _options = options;
        _out = output;
    }

    /// <summary>0 when verified; 1 when the comparison failed.</summary>
    public async Task<int> RunAsync(CancellationToken ct)
    {
        var dir = _options.KeepDirectory ?? Directory.CreateTempSubdirectory("sharerpc-demo-").FullName;
        Directory.CreateDirectory(dir);
        try
        {
            return await RunInAsync(dir, ct);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (_options.KeepDirectory is null)
            {
                try
                {
                    Directory.Delete(dir, true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private async Task<int> RunInAsync(string dir, CancellationToken ct)
    {
        var aTurns = Math.Max(4, _options.Turns * 2 / 3);
        var bTurns = Math.Max(1, _options.Turns - aTurns);
        var crashTurn = aTurns / 2 + 1;
        var downTurns = Math.Clamp(aTurns - crashTurn, 0, 3);
        var handoffTurn = crashTurn + downTurns; // A's last turn
        Line("ShareRpc demo: an agent's session shared live, a server crash survived, a handoff fenced by revocation.");
        Line($"work dir {dir} ({(_options.KeepDirectory is null ? "removed at the end; keep it with --dir DIR" : "kept")})");

        // 1. A real server process, so it can be killed for real.
        Step(1, "a share server (embedded SQLite, fsync per commit), as a child process");
        await using var server = new DemoServer(Path.Combine(dir, "server"));
        Detail(server.CommandLine);
        var started = await server.StartAsync();
        Detail($"listening on {server.Address} (up in {Seconds(started)})");

        // 2. Agent A creates the share for its session and streams into it; a viewer tails it.
        Step(2, "agent A shares its session");
        var holdAcks = 0;
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var faults = new ClientFaultHooks
        {
            // Armed only around the crash: an ack that arrives is held unrecorded, then dropped, as
            // if it died with the server. The batch was committed (the server acks after commit).
            BeforeRecordAck = async _ =>
            {
                if (Volatile.Read(ref holdAcks) == 1)
                {
                    held.TrySetResult();
                    await release.Task.ConfigureAwait(false);
                    throw new IOException("demo: this ack died with the server");
                }
            },
        };
        await using var a = new ShareRpcClient(new ShareRpcClientOptions
        {
            OutboxPath = Path.Combine(dir, "agent-a.db"),
            InitialBackoff = TimeSpan.FromMilliseconds(50),
            MaxBackoff = TimeSpan.FromMilliseconds(400),
            Faults = faults,
        });
        var sessionId = "ses_" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));
        var ownerRef = await a.EnsureShareAsync(server.Address, sessionId, "Fix the flaky login test", ct);
        var aWriterRef = (await a.DelegateAsync(ownerRef, [Right.Read, Right.Append], note: "agent A's writer", cancellationToken: ct)).SturdyRef;
        var viewerRef = (await a.DelegateAsync(ownerRef, [Right.Read], note: "viewer", cancellationToken: ct)).SturdyRef;
        Detail($"A created share {Short(SturdyRef.Parse(ownerRef).ShareId)} for session {sessionId} (share key = session id); A's host keeps the owner ref");
        Detail($"A writes with its own capability {Cap(aWriterRef)}: READ+APPEND, delegated from the owner ref");

        using var viewerCalls = new CallCounter();
        await using var viewerClient = new ShareRpcClient(new ShareRpcClientOptions { InitialBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(400), Channel = new() { HttpHandler = viewerCalls } });
        var viewer = new Viewer(viewerClient, viewerRef);
        using var viewerStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var viewerTask = viewer.RunAsync(viewerStop.Token);
        Detail($"a viewer tails the session from cursor 0 with a READ-only capability {Cap(viewerRef)}");
        var viewerLink = ShareRpc.Viewer.ShareRpcViewer.LinkFor(viewerRef);
        Detail($"the same view in a browser: {viewerLink}{(_options.KeepServing > TimeSpan.Zero ? "" : " (add --keep-serving to open it after the demo)")}");

        var aSession = new AgentSessionWriter(a.OpenWriter(aWriterRef));
        var aOps = new List<PendingOp>
        {
            await aSession.UpsertSessionAsync(SessionScript.Session(sessionId, "agent-a", 0)),
            await aSession.SetModelsAsync(SessionScript.Models()),
        };
        var sw = Stopwatch.StartNew();
        for (var turn = 1; turn < crashTurn; turn++)
        {
            aOps.AddRange(await SessionScript.TurnAsync(aSession, sessionId, "agent-a", turn));
        }

        await WithProgressAsync(aSession.FlushAsync(ct), async () => $"A: {(await aSession.Writer.GetProgressAsync()).PendingOps} ops waiting for acks");
        var head = (await aOps[^1].Acked).Cursor;
        Detail($"A streamed turns 1-{crashTurn - 1}: {aOps.Count} ops (messages, parts, tool calls, diffs) durable in its outbox, all acked up to cursor {head} ({Seconds(sw.Elapsed)})");
        await WaitAsync(viewer.WaitForCursorAsync(head), viewerTask, "the viewer to reach cursor " + head);
        Detail($"viewer: cursor {viewer.Reader.Cursor}, {SessionScript.Describe(viewer.Reader.State)}; last answer {SessionScript.LastAnswer(viewer.Reader.State)}");

        // 3. Kill the server mid-stream; A keeps writing; restart; A's outbox replays.
        Step(3, "the server is killed mid-stream (SIGKILL) and restarted");
        var pendingFrom = aOps.Count;
        Volatile.Write(ref holdAcks, 1);
        aOps.AddRange(await SessionScript.TurnAsync(aSession, sessionId, "agent-a", crashTurn));
        await WaitAsync(held.Task, viewerTask, "A's first ack of turn " + crashTurn);
        Detail($"A streams turn {crashTurn}; the acks that reach A from now on are held unrecorded, so the kill lands between commits and their acks");
        await WaitUntilStableAsync(() => viewer.Reader.Cursor, TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(5));
        var seenAtKill = viewer.Reader.Cursor;
        await server.KillAsync();
        Volatile.Write(ref holdAcks, 0);
        release.TrySetResult();
        Detail($"SIGKILL: the server process is gone; the viewer had seen cursor {seenAtKill}, A had {head} acked");

        for (var turn = crashTurn + 1; turn <= handoffTurn; turn++)
        {
            aOps.AddRange(await SessionScript.TurnAsync(aSession, sessionId, "agent-a", turn));
        }

        var down = await aSession.Writer.GetProgressAsync();
        var sealedBatches = (await a.Outbox.GetStatusAsync(aSession.Writer.ShareId)).SealedBatches;
        Detail(handoffTurn > crashTurn
            ? $"A keeps working while the server is down: turns {crashTurn + 1}-{handoffTurn} go to its outbox; {down.PendingOps} ops unacked ({sealedBatches} batches sealed and sent before the kill)"
            : $"A's outbox holds {down.PendingOps} unacked ops ({sealedBatches} batches sealed and sent before the kill)");
        Detail($"A's sender retries with backoff meanwhile (last error: {down.LastError ?? "none yet"})");

        var restarted = await server.StartAsync();
        Detail($"restart: {server.CommandLine} (same port, same data): listening again in {Seconds(restarted)}");
        await WithProgressAsync(aSession.FlushAsync(ct), async () => $"A: {(await aSession.Writer.GetProgressAsync()).PendingOps} ops waiting for acks");
        var replayed = await Task.WhenAll(aOps.Skip(pendingFrom).Select(p => p.Acked));
        var duplicates = replayed.Count(o => o.Status == OpStatus.Duplicate);
        var applied = replayed.Count(o => o.Status == OpStatus.Applied);
        head = replayed[^1].Cursor;
        Detail($"replay: A's sender reconnected and resent its {replayed.Length} unacked ops, oldest batch first, byte for byte:");
        Detail($"  DUPLICATE {duplicates}: committed before the kill, their acks lost; the server answered with the first cursor and applied nothing twice");
        Detail($"  APPLIED {applied}: the rest, in A's seq order; head is now cursor {head}");
        await WaitAsync(viewer.WaitForCursorAsync(head), viewerTask, "the viewer to reach cursor " + head);
        Detail(viewerCalls["Subscribe"] > 1
            ? $"viewer: its stream broke with the server and resumed by itself after cursor {seenAtKill}; now at cursor {viewer.Reader.Cursor}, no gap, no repeat"
            : $"viewer: at cursor {viewer.Reader.Cursor}, no gap, no repeat");

        // 4. Handoff: A delegates B, A's capability is revoked, A is fenced.
        Step(4, "handoff to agent B, fenced by revocation");
        var bRef = (await a.DelegateAsync(ownerRef, [Right.Read, Right.Append], note: "agent B's writer", cancellationToken: ct)).SturdyRef;
        Detail($"A delegates an append capability for B (READ+APPEND, from the owner ref, so it is a sibling of A's, not its child)");
        Detail($"and hands B the sturdy ref: {Redact(bRef)}");
        var epochBefore = (await a.RedeemAsync(ownerRef, ct)).Epoch;
        var viewerCallsBeforeRevoke = viewerCalls["Subscribe"];
        var revoke = await a.RevokeAsync(ownerRef, SturdyRef.Parse(aWriterRef).CapabilityId, ct);
        Detail($"A's writer capability {Cap(aWriterRef)} is revoked (RevokeCapability with the owner ref): epoch {epochBefore} -> {revoke.Epoch}");
        var late = new Sharerpc.Agent.V1.Part { Id = "prt_06", MessageId = SessionScript.MessageId(2 * handoffTurn), SessionId = sessionId, Text = new() { Text = "[agent-a] one more thing..." } };
        var lateOp = await aSession.UpsertPartAsync(late);
        string fence;
        try
        {
            var outcome = await lateOp.Acked.WaitAsync(TimeSpan.FromSeconds(30), ct);
            fence = $"NOT fenced: the server answered {outcome.Status} at cursor {outcome.Cursor}";
        }
        catch (ShareRpcCallException ex)
        {
            fence = $"refused {CodeName(ex)} ({ex.Reason})";
        }

        var aStatus = await a.Outbox.GetStatusAsync(aSession.Writer.ShareId);
        Detail($"A appends one more part: {fence}. A is fenced");
        Detail($"nothing dropped silently: the refused op stays in A's outbox (pending {aStatus.PendingOps}, stopped: {aStatus.StoppedReason})");

        // 5. B catches up from cursor 0 and carries on; the viewer keeps tailing.
        Step(5, "agent B catches up from cursor 0 and carries on");
        await using var b = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = Path.Combine(dir, "agent-b.db"), InitialBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(400) });
        sw.Restart();
        var bHead = (await b.RedeemAsync(bRef, ct)).Cursor;
        var bReader = new AgentSessionReader(b, bRef);
        if (bHead > 0)
        {
            await foreach (var e in b.SubscribeAsync(bRef, 0, false, ct))
            {
                if (e.Op is { } op)
                {
                    bReader.Apply(op);
                    if (op.Cursor >= bHead)
                    {
                        break;
                    }
                }
            }
        }

        var snapshot = await AgentSessionReader.ReadSnapshotAsync(b, bRef, cancellationToken: ct);
        Detail($"B subscribes from cursor 0 with its ref: caught up to cursor {bReader.Cursor} in {Seconds(sw.Elapsed)}: {SessionScript.Describe(bReader.State)}; {(bReader.State.Equals(snapshot) ? "equals" : "DIFFERS FROM")} the server's snapshot");
        Detail($"B picks up where A stopped: {SessionScript.LastAnswer(bReader.State)}");
        var bSession = new AgentSessionWriter(b.OpenWriter(bRef));
        var bOps = new List<PendingOp> { await bSession.UpsertSessionAsync(SessionScript.Session(sessionId, "agent-b", handoffTurn)) };
        sw.Restart();
        for (var turn = handoffTurn + 1; turn <= handoffTurn + bTurns; turn++)
        {
            bOps.AddRange(await SessionScript.TurnAsync(bSession, sessionId, "agent-b", turn));
        }

        await WithProgressAsync(bSession.FlushAsync(ct), async () => $"B: {(await bSession.Writer.GetProgressAsync()).PendingOps} ops waiting for acks");
        head = (await bOps[^1].Acked).Cursor;
        Detail($"B streams turns {handoffTurn + 1}-{handoffTurn + bTurns}: {bOps.Count} ops, all acked, head is cursor {head} ({Seconds(sw.Elapsed)})");
        await WaitAsync(viewer.WaitForCursorAsync(head), viewerTask, "the viewer to reach cursor " + head);
        var finalSnapshot = await AgentSessionReader.ReadSnapshotAsync(b, bRef, cancellationToken: ct);
        var viewEqual = viewer.Reader.State.Equals(finalSnapshot);
        Detail(viewerCalls["Subscribe"] > viewerCallsBeforeRevoke
            ? "viewer: the revoke's epoch bump ended its stream; it redeemed and resumed (its READ capability was not revoked)"
            : "viewer: its stream went on through the revoke (its READ capability was not revoked)");
        Detail($"viewer: cursor {viewer.Reader.Cursor}, {SessionScript.Describe(viewer.Reader.State)}, session by {viewer.Reader.State.Session?.Agent}; {(viewEqual ? "equals" : "DIFFERS FROM")} the server's snapshot");

        // 6. The comparison: enqueued op ids against the server's log from cursor 0.
        Step(6, "verify: what was enqueued against the server's log, read from cursor 0");
        viewerStop.Cancel();
        try
        {
            await viewerTask;
        }
        catch (OperationCanceledException)
        {
        }

        await using var auditor = new ShareRpcClient();
        var log = await ReadLogAsync(auditor, ownerRef, ct);
        var logHead = log.Count == 0 ? 0 : log[^1].Cursor;
        log = ApplyTestHooks(log);
        var enqueued = new List<EnqueuedOp>();
        foreach (var (writer, ops) in new[] { ("A", aOps), ("B", bOps) })
        {
            var outcomes = await Task.WhenAll(ops.Select(p => p.Acked));
            enqueued.AddRange(ops.Zip(outcomes, (p, o) => new EnqueuedOp(writer, p.OpId, p.Seq, o)));
        }

        var verdict = DemoVerifier.Verify(enqueued, [lateOp.OpId], log, logHead, viewer.Ops);
        var problems = verdict.Problems.ToList();
        if (!viewEqual)
        {
            problems.Add("view: the viewer's session differs from the server's snapshot");
        }

        if (duplicates == 0)
        {
            problems.Add("replay: no op came back DUPLICATE, so the crash did not hit a committed, unacked batch");
        }

        Detail($"enqueued: A {aOps.Count} acked + 1 fenced, B {bOps.Count}; server log: {log.Count} ops, cursors 1..{logHead}");
        if (problems.Count == 0)
        {
            Detail("each enqueued op is in the log exactly once, at its ack's cursor, in its writer's seq order; the fenced op is not; nothing else is; the viewer saw exactly the log");
        }

        foreach (var p in problems)
        {
            Detail("FAILED " + p);
        }

        Line($"({Seconds(_clock.Elapsed)} in all)");
        var summary = string.Create(CultureInfo.InvariantCulture, $"{verdict.Ops} ops, {verdict.Lost} lost, {verdict.Duplicated} duplicated");
        var ok = verdict.Ok && problems.Count == 0;
        var verdictLine = ok ? "verified: " + summary : $"verification failed: {summary}, {problems.Count} problem(s)";
        if (_options.KeepServing > TimeSpan.Zero)
        {
            // The verdict first, then the server stays up for the person at the browser.
            Line(verdictLine);
            await KeepServingAsync(viewerLink, ct);
        }

        if (ok)
        {
            await server.StopAsync();
        }

        if (_options.KeepServing == TimeSpan.Zero)
        {
            Line(verdictLine); // the last line (tests read it)
        }

        return ok ? 0 : 1;
    }

    /// <summary>
    /// --keep-serving: the server and the viewer link stay up for a while. Ctrl-C (or SIGTERM) ends
    /// the wait, not the process, so the server is still stopped and the temp dir removed.
    /// </summary>
    private async Task KeepServingAsync(string viewerLink, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        void Stop(System.Runtime.InteropServices.PosixSignalContext signal)
        {
            signal.Cancel = true;
            stop.Cancel();
        }

        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
        Line($"the server stays up for {_options.KeepServing.TotalMinutes.ToString("0.#", CultureInfo.InvariantCulture)} min so you can open the viewer (Ctrl-C ends it sooner):");
        Line("  " + viewerLink);
        try
        {
            await Task.Delay(_options.KeepServing, stop.Token);
        }
        catch (OperationCanceledException)
        {
            // asked to stop sooner
        }

        Line("the server is stopping");
    }

    private List<CommittedOp> ApplyTestHooks(List<CommittedOp> log)
    {
        if (_options.HideLoggedCursor > 0)
        {
            log = log.Where(o => o.Cursor != _options.HideLoggedCursor).ToList();
        }

        if (_options.DoubleLoggedCursor > 0 && log.FindIndex(o => o.Cursor == _options.DoubleLoggedCursor) is var i and >= 0)
        {
            log.Insert(i + 1, log[i]);
        }

        return log;
    }

    /// <summary>The whole log: Subscribe from cursor 0 until the head that a fresh redeem reports.</summary>
    private static async Task<List<CommittedOp>> ReadLogAsync(ShareRpcClient client, string sturdyRef, CancellationToken ct)
    {
        var head = (await client.RedeemAsync(sturdyRef, ct)).Cursor;
        var log = new List<CommittedOp>();
        if (head == 0)
        {
            return log;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        await foreach (var e in client.SubscribeAsync(sturdyRef, 0, false, timeout.Token))
        {
            if (e.Op is { } op)
            {
                log.Add(op);
                if (op.Cursor >= head)
                {
                    break;
                }
            }
        }

        return log;
    }

    private async Task WithProgressAsync(Task work, Func<Task<string>> status)
    {
        while (await Task.WhenAny(work, Task.Delay(TimeSpan.FromSeconds(2))) != work)
        {
            Detail("... " + await status());
        }

        await work;
    }

    private static async Task WaitAsync(Task what, Task viewer, string description)
    {
        var done = await Task.WhenAny(what, viewer, Task.Delay(TimeSpan.FromSeconds(60)));
        if (done == what)
        {
            await what;
            return;
        }

        if (done == viewer)
        {
            await viewer; // rethrows why the viewer stopped
            throw new InvalidOperationException("The viewer stopped while waiting for " + description);
        }

        throw new TimeoutException("Timed out waiting for " + description);
    }

    private static async Task WaitUntilStableAsync(Func<ulong> value, TimeSpan quiet, TimeSpan max)
    {
        var until = DateTime.UtcNow + max;
        var last = value();
        while (DateTime.UtcNow < until)
        {
            await Task.Delay(quiet);
            var now = value();
            if (now == last)
            {
                return;
            }

            last = now;
        }
    }

    private void Step(int n, string title)
    {
        _out.WriteLine();
        _out.WriteLine($"[{n}/6] {title}  (t={Seconds(_clock.Elapsed)})");
    }

    private void Detail(string text) => _out.WriteLine("      " + text);

    private void Line(string text) => _out.WriteLine(text);

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";

    // Ids are UUIDv7 (time first): the tail is what tells two apart.
    private static string Short(string id) => id.Length > 12 ? "…" + id[^8..] : id;

    /// <summary>PermissionDenied → PERMISSION_DENIED, as gRPC names codes on the wire.</summary>
    private static string CodeName(Client.ShareRpcCallException ex) =>
        string.Concat(ex.StatusCode.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : char.ToUpperInvariant(c).ToString()));

    private static string Cap(string sturdyRef) => Short(SturdyRef.Parse(sturdyRef).CapabilityId);

    // A sturdy ref is a bearer secret: never print the part after '#'.
    private static string Redact(string sturdyRef) => sturdyRef[..(sturdyRef.IndexOf('#') + 1)] + "…";

    /// <summary>The read-only viewer: every op from cursor 0, kept as received and applied to a session view.</summary>
    private sealed class Viewer(ShareRpcClient client, string sturdyRef)
    {
        private readonly List<CommittedOp> _ops = new();

        public AgentSessionReader Reader { get; } = new(client, sturdyRef);

        public IReadOnlyList<CommittedOp> Ops
        {
            get
            {
                lock (_ops)
                {
                    return [.. _ops];
                }
            }
        }

        public Task<AgentSessionState> WaitForCursorAsync(ulong cursor) => Reader.WaitForCursorAsync(cursor);

        public Task RunAsync(CancellationToken ct) => Task.Run(
            async () =>
            {
                await foreach (var e in client.SubscribeAsync(sturdyRef, 0, false, ct))
                {
                    if (e.Op is { } op)
                    {
                        lock (_ops)
                        {
                            _ops.Add(op);
                        }

                        Reader.Apply(op);
                    }
                }
            },
            CancellationToken.None);
    }
}
