using Google.Protobuf.WellKnownTypes;
using Sharerpc.Agent.V1;
using ShareRpc.AgentSession;
using ShareRpc.Client;

namespace ShareRpc.Viewer.Tests;

/// <summary>
/// A small agent session written through the profile's writer (docs/agent-session.md): per turn a
/// user message, an assistant message with a step, reasoning, a tool call going pending → running →
/// completed (every third one ends in error), a diff, the answer streamed in two upserts, the step's
/// usage and the finished message: <see cref="OpsPerTurn"/> ops.
/// </summary>
internal static class SessionTurns
{
    public const int OpsPerTurn = 13;

    private static readonly DateTimeOffset s_start = new(2026, 12, 1, 9, 0, 0, TimeSpan.Zero);

    public static Session Session(string id, string title) => new()
    {
        Id = id,
        Title = title,
        Directory = "/home/dev/webapp",
        Agent = "test-agent/1.0",
        CreatedAt = Timestamp.FromDateTimeOffset(s_start),
        UpdatedAt = Timestamp.FromDateTimeOffset(s_start),
    };

    /// <summary>Writes turns <paramref name="from"/>..<paramref name="to"/>; returns the cursor of the last op once every op is acked.</summary>
    public static async Task<ulong> WriteAsync(AgentSessionWriter writer, string sessionId, int from, int to)
    {
        PendingOp? last = null;
        for (var turn = from; turn <= to; turn++)
        {
            last = await TurnAsync(writer, sessionId, turn);
        }

        await writer.FlushAsync();
        return last is null ? 0 : (await last.Acked).Cursor;
    }

    public static string UserId(int turn) => $"msg_{2 * turn - 1:D4}";

    public static string AssistantId(int turn) => $"msg_{2 * turn:D4}";

    private static async Task<PendingOp> TurnAsync(AgentSessionWriter w, string sessionId, int turn)
    {
        var at = s_start.AddMinutes(turn);
        Part NewPart(string messageId, string id) => new() { Id = id, MessageId = messageId, SessionId = sessionId, StartedAt = Timestamp.FromDateTimeOffset(at) };

        await w.UpsertMessageAsync(new Message { Id = UserId(turn), SessionId = sessionId, Role = Role.User, CreatedAt = Timestamp.FromDateTimeOffset(at) });
        var ask = NewPart(UserId(turn), "prt_01");
        ask.Text = new TextPart { Text = $"Turn {turn}: make test {turn} pass." };
        await w.UpsertPartAsync(ask);

        var reply = new Message { Id = AssistantId(turn), SessionId = sessionId, Role = Role.Assistant, CreatedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(1)), ParentId = UserId(turn) };
        await w.UpsertMessageAsync(reply);
        var step = NewPart(AssistantId(turn), "prt_01");
        step.StepStart = new StepStartPart { Snapshot = $"snap-{turn}" };
        await w.UpsertPartAsync(step);
        var thinking = NewPart(AssistantId(turn), "prt_02");
        thinking.Reasoning = new ReasoningPart { Text = $"Read test/{turn}.ts first." };
        await w.UpsertPartAsync(thinking);

        var tool = NewPart(AssistantId(turn), "prt_03");
        tool.Tool = new ToolPart { CallId = $"call_{turn}", Tool = "bash", Title = $"npm test -- {turn}", Status = ToolStatus.Pending, InputJson = $"{{\"cmd\":\"npm test -- {turn}\"}}" };
        await w.UpsertPartAsync(tool);
        tool.Tool.Status = ToolStatus.Running;
        await w.UpsertPartAsync(tool);
        if (turn % 3 == 0)
        {
            tool.Tool.Status = ToolStatus.Error;
            tool.Tool.Error = "exit code 1";
        }
        else
        {
            tool.Tool.Status = ToolStatus.Completed;
            tool.Tool.Output = $"{turn} passing";
        }

        await w.UpsertPartAsync(tool);
        await w.AppendDiffAsync(new FileDiff
        {
            Path = $"test/{turn}.ts",
            Change = ChangeKind.Modified,
            Patch = $"@@ -1 +1 @@\n-// before {turn}\n+// after {turn}\n",
            Additions = 1,
            Deletions = 1,
            MessageId = AssistantId(turn),
        });

        var text = NewPart(AssistantId(turn), "prt_04");
        text.Text = new TextPart { Text = $"Test {turn}" };
        await w.UpsertPartAsync(text);
        text.Text = new TextPart { Text = $"Test {turn} passes now." };
        await w.UpsertPartAsync(text);

        reply.CompletedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(9));
        reply.FinishReason = "stop";
        return await w.UpsertMessageAsync(reply);
    }
}
