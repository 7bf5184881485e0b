using Sharerpc.Agent.V1;
using ShareRpc.AgentSession;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.Viewer.Tests;

/// <summary>The server's log, read from cursor 0, and the conversation the viewer must show for it.</summary>
internal static class ServerLog
{
    /// <summary>Every committed op, cursor 1 to the head a fresh redeem reports.</summary>
    public static async Task<List<CommittedOp>> ReadAsync(ShareRpcClient client, string sturdyRef)
    {
        var head = (await client.RedeemAsync(sturdyRef)).Cursor;
        var log = new List<CommittedOp>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        if (head > 0)
        {
            await foreach (var e in client.SubscribeAsync(sturdyRef, 0, false, timeout.Token))
            {
                if (e.Op is not { } op) continue;
                log.Add(op);
                if (op.Cursor >= head) break;
            }
        }

        return log;
    }

    /// <summary>The session the log makes (the log replayed by the SDK's reader), in the viewer's DOM terms.</summary>
    public static async Task<RenderedConversation> ExpectedAsync(ShareRpcClient client, string sturdyRef)
    {
        var reader = new AgentSessionReader(client, sturdyRef);
        var log = await ReadAsync(client, sturdyRef);
        foreach (var op in log) reader.Apply(op);
        Assert.Equal(Enumerable.Range(1, log.Count).Select(i => (ulong)i), log.Select(o => o.Cursor)); // the log itself has no gap
        var s = reader.State;
        return new RenderedConversation(
            s.Session?.Title,
            [.. s.Messages.Select(m => new RenderedMessage(m.Id, m.Role.ToString().ToLowerInvariant(), [.. s.PartsOf(m.Id).Select(Part)]))],
            [.. s.Diffs.Select(d => new RenderedDiff(d.Cursor.ToString(System.Globalization.CultureInfo.InvariantCulture), d.Diff.Path))]);
    }

    private static RenderedPart Part(Part p) => p.ContentCase switch
    {
        Sharerpc.Agent.V1.Part.ContentOneofCase.Text => new(p.Id, "text", null, p.Text.Text),
        Sharerpc.Agent.V1.Part.ContentOneofCase.Reasoning => new(p.Id, "reasoning", null, p.Reasoning.Text),
        Sharerpc.Agent.V1.Part.ContentOneofCase.Tool => new(p.Id, "tool", p.Tool.Status.ToString().ToLowerInvariant(), null),
        Sharerpc.Agent.V1.Part.ContentOneofCase.File => new(p.Id, "file", null, null),
        Sharerpc.Agent.V1.Part.ContentOneofCase.StepStart => new(p.Id, "stepStart", null, null),
        Sharerpc.Agent.V1.Part.ContentOneofCase.StepFinish => new(p.Id, "stepFinish", null, null),
        _ => new(p.Id, "empty", null, null),
    };
}
