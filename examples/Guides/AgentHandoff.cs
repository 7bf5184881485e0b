using Grpc.Core;
using Sharerpc.Agent.V1;
using ShareRpc.AgentSession;
using ShareRpc.Client;
using ShareRpc.Server.Hosting;
using Sharerpc.V1;

namespace ShareRpc.Examples.Guides;

/// <summary>docs/guides/agent-handoff.md: hand an agent's live session to another agent, fenced by revocation.</summary>
public static class AgentHandoff
{
    public static async Task<int> RunAsync(string dir)
    {
        await using var host = await ShareRpcServerHost.StartAsync(o => o.DataDirectory = Path.Combine(dir, "server"));
        var server = host.Address;
        var sessionId = "ses_guide";

        // region create
        // Agent A's host: the share is the session (share key = session id). The owner ref holds
        // every right; A's agent loop gets a narrower capability of its own to write with.
        await using var a = new ShareRpcClient(new() { OutboxPath = Path.Combine(dir, "agent-a.db") });
        var ownerRef = await a.EnsureShareAsync(server, sessionId, "Fix the flaky login test");
        var aRef = (await a.DelegateAsync(ownerRef, [Right.Read, Right.Append], note: "agent A")).SturdyRef;
        var viewerRef = (await a.DelegateAsync(ownerRef, [Right.Read], note: "viewer")).SturdyRef;
        // endregion

        // region view
        // Anyone holding a READ ref can follow the session live: a snapshot, then every op as it
        // commits; the subscription resumes by itself after disconnects and epoch bumps.
        await using var viewerClient = new ShareRpcClient();
        var viewer = new AgentSessionReader(viewerClient, viewerRef);
        using var stopViewer = new CancellationTokenSource();
        var following = viewer.FollowAsync(stopViewer.Token);
        // endregion

        // region write
        // A streams its session through its outbox: each call returns once the op is durable on
        // A's disk; the sender streams it and replays it after any failure, applied once.
        var aSession = new AgentSessionWriter(a.OpenWriter(aRef));
        await aSession.UpsertSessionAsync(new Session { Id = sessionId, Title = "Fix the flaky login test", Agent = "agent-a" });
        await aSession.UpsertMessageAsync(new Message { Id = "msg_0001", SessionId = sessionId, Role = Role.User });
        await aSession.UpsertPartAsync(new Part { Id = "prt_01", MessageId = "msg_0001", SessionId = sessionId, Text = new() { Text = "Why does the login test fail?" } });
        await aSession.UpsertMessageAsync(new Message { Id = "msg_0002", SessionId = sessionId, Role = Role.Assistant, ParentId = "msg_0001" });
        var last = await aSession.UpsertPartAsync(new Part { Id = "prt_01", MessageId = "msg_0002", SessionId = sessionId, Text = new() { Text = "It races the session cookie." } });
        await aSession.FlushAsync(); // every op acked
        // endregion

        var seen = await viewer.WaitForCursorAsync((await last.Acked).Cursor);
        Console.WriteLine($"viewer: {seen.Messages.Count} messages at cursor {seen.Cursor}");

        // region handoff
        // The handoff. B's capability is minted from the owner ref, so it is a sibling of A's:
        // revoking A's takes nothing of B's with it (a revoke takes the capability's descendants).
        var bRef = (await a.DelegateAsync(ownerRef, [Right.Read, Right.Append], note: "agent B")).SturdyRef;
        var revoked = await a.RevokeAsync(ownerRef, SturdyRef.Parse(aRef).CapabilityId);
        Console.WriteLine($"A's capability revoked; epoch is now {revoked.Epoch}");
        // endregion

        // region fenced
        // A, or a stale copy of A still running, tries to go on: the server refuses it. The op is
        // not dropped silently: it stays in A's outbox and the writer reports why it stopped.
        var late = await aSession.UpsertPartAsync(new Part { Id = "prt_02", MessageId = "msg_0002", SessionId = sessionId, Text = new() { Text = "one more thing" } });
        try
        {
            await late.Acked;
        }
        catch (ShareRpcCallException e) when (e.StatusCode == StatusCode.PermissionDenied)
        {
            Console.WriteLine($"A is fenced: {e.StatusCode} ({e.Reason}); pending in A's outbox: {(await aSession.Writer.GetProgressAsync()).PendingOps}");
        }
        // endregion

        // region catchup
        // B, in another process with only bRef: catch up from cursor 0, then carry on.
        await using var b = new ShareRpcClient(new() { OutboxPath = Path.Combine(dir, "agent-b.db") });
        var session = new AgentSessionReader(b, bRef);
        var head = (await b.RedeemAsync(bRef)).Cursor;
        await foreach (var e in b.SubscribeAsync(bRef, fromCursor: 0))
        {
            if (e.Op is { } op) session.Apply(op);
            if (session.Cursor >= head) break;
        }

        var state = session.State;
        Console.WriteLine($"B caught up: {state.Messages.Count} messages, last part: {state.PartsOf("msg_0002")[^1].Text.Text}");
        var bSession = new AgentSessionWriter(b.OpenWriter(bRef));
        await bSession.UpsertPartAsync(new Part { Id = "prt_02", MessageId = "msg_0002", SessionId = sessionId, Text = new() { Text = "Fixed: the test waits for the redirect." } });
        await bSession.FlushAsync();
        // endregion

        var final = await viewer.WaitForCursorAsync(head + 1);
        Console.WriteLine($"viewer: {final.PartsOf("msg_0002").Count} parts in msg_0002, last: {final.PartsOf("msg_0002")[^1].Text.Text}");
        stopViewer.Cancel();
        try
        {
            await following;
        }
        catch (OperationCanceledException)
        {
        }

        var ok = final.PartsOf("msg_0002").Count == 2 && final.PartsOf("msg_0002")[^1].Text.Text.StartsWith("Fixed", StringComparison.Ordinal);
        Console.WriteLine(ok ? "handoff: ok" : "handoff: FAILED");
        return ok ? 0 : 1;
    }
}
