using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Sharerpc.Agent.V1;
using ShareRpc.AgentSession;
using ShareRpc.Client;

namespace ShareRpc.Cli.Demo;

/// <summary>
/// A made-up coding session, written through the agent-session profile (docs/agent-session.md):
/// each turn is what an agent streams while it works — the user's message, the assistant's
/// message, a step, reasoning, a tool call going pending → running → completed, the file diff it
/// made, the answer text arriving in chunks (the same part upserted), the step's usage and the
/// finished message. <see cref="OpsPerTurn"/> ops per turn, every one through the durable outbox.
/// </summary>
internal static class SessionScript
{
    public const int OpsPerTurn = 14;

    private static readonly DateTimeOffset s_start = new(2026, 11, 22, 9, 0, 0, TimeSpan.Zero);

    private static readonly (string Ask, string Tool, string Title, string Path, string Answer)[] s_tasks =
    [
        ("Why does the login test fail on CI?", "bash", "npm test -- login", "test/login.test.ts", "The test races the session cookie; it now waits for the redirect."),
        ("Add a retry to the token refresh.", "edit", "edit src/auth/refresh.ts", "src/auth/refresh.ts", "Refresh retries twice with jittered backoff on 503."),
        ("Log the request id on auth errors.", "edit", "edit src/auth/errors.ts", "src/auth/errors.ts", "Auth errors now carry the request id in the log line."),
        ("Bump the session timeout to 30 minutes.", "edit", "edit config/session.json", "config/session.json", "The timeout is 30 minutes; the docs say so too."),
        ("Run the whole suite.", "bash", "npm test", "CHANGELOG.md", "All 412 tests pass; the changelog notes the fix."),
        ("Remove the unused OAuth scopes.", "edit", "edit src/auth/scopes.ts", "src/auth/scopes.ts", "Two scopes were never requested; they are gone."),
    ];

    public static string MessageId(int n) => $"msg_{n:D4}";

    /// <summary>The session record (collection <c>session</c>, key <c>info</c>).</summary>
    public static Session Session(string id, string agent, int turns) => new()
    {
        Id = id,
        Title = "Fix the flaky login test",
        Directory = "/home/dev/webapp",
        ProjectId = "webapp",
        Agent = agent,
        CreatedAt = Timestamp.FromDateTimeOffset(s_start),
        UpdatedAt = Timestamp.FromDateTimeOffset(s_start.AddMinutes(turns)),
        Labels = { ["agent"] = agent },
    };

    public static ModelList Models() => new()
    {
        Models =
        {
            new Model { ProviderId = "anthropic", ModelId = "claude-sonnet-4", Name = "Claude Sonnet 4", Reasoning = true, ToolCall = true, Limits = new ModelLimits { ContextTokens = 200_000, OutputTokens = 64_000 } },
            new Model { ProviderId = "openai", ModelId = "gpt-5", Name = "GPT-5", Reasoning = true, ToolCall = true, Limits = new ModelLimits { ContextTokens = 400_000, OutputTokens = 128_000 } },
        },
        DefaultModel = new ModelRef { ProviderId = "anthropic", ModelId = "claude-sonnet-4" },
    };

    /// <summary>Turn <paramref name="turn"/> (1-based): <see cref="OpsPerTurn"/> ops, each durable in the outbox when its call returns.</summary>
    public static async Task<List<PendingOp>> TurnAsync(AgentSessionWriter writer, string sessionId, string agent, int turn)
    {
        var task = s_tasks[(turn - 1) % s_tasks.Length];
        var at = s_start.AddMinutes(turn);
        var user = MessageId(2 * turn - 1);
        var assistant = MessageId(2 * turn);
        var model = new ModelRef { ProviderId = "anthropic", ModelId = "claude-sonnet-4" };
        var ops = new List<PendingOp>(OpsPerTurn);

        Part NewPart(string messageId, string id, int second) => new()
        {
            Id = id,
            MessageId = messageId,
            SessionId = sessionId,
            StartedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(second)),
        };

        ops.Add(await writer.UpsertMessageAsync(new Message { Id = user, SessionId = sessionId, Role = Role.User, CreatedAt = Timestamp.FromDateTimeOffset(at), Model = model }));
        var ask = NewPart(user, "prt_01", 0);
        ask.Text = new TextPart { Text = task.Ask };
        ops.Add(await writer.UpsertPartAsync(ask));

        var reply = new Message { Id = assistant, SessionId = sessionId, Role = Role.Assistant, CreatedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(1)), Model = model, ParentId = user };
        ops.Add(await writer.UpsertMessageAsync(reply));
        var step = NewPart(assistant, "prt_01", 1);
        step.StepStart = new StepStartPart { Snapshot = $"snap-{turn:D3}" };
        ops.Add(await writer.UpsertPartAsync(step));
        var thinking = NewPart(assistant, "prt_02", 2);
        thinking.Reasoning = new ReasoningPart { Text = $"[{agent}] Look at {task.Path} first, then {task.Tool}." };
        ops.Add(await writer.UpsertPartAsync(thinking));

        var tool = NewPart(assistant, "prt_03", 3);
        tool.Tool = new ToolPart { CallId = $"call_{turn:D3}", Tool = task.Tool, Title = task.Title, Status = ToolStatus.Pending, InputJson = $"{{\"path\":\"{task.Path}\"}}" };
        ops.Add(await writer.UpsertPartAsync(tool));
        tool.Tool.Status = ToolStatus.Running;
        ops.Add(await writer.UpsertPartAsync(tool));
        tool.Tool.Status = ToolStatus.Completed;
        tool.Tool.Output = $"ok ({task.Path})";
        tool.EndedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(9));
        ops.Add(await writer.UpsertPartAsync(tool));

        ops.Add(await writer.AppendDiffAsync(new FileDiff
        {
            Path = task.Path,
            Change = ChangeKind.Modified,
            Patch = $"@@ -1 +1 @@\n-// turn {turn - 1}\n+// turn {turn} by {agent}\n",
            Additions = 1,
            Deletions = 1,
            MessageId = assistant,
            PartId = "prt_03",
            CreatedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(9)),
        }));

        // The answer streams in: the same text part upserted as the text grows.
        var text = NewPart(assistant, "prt_04", 10);
        var words = task.Answer.Split(' ');
        for (var chunk = 1; chunk <= 3; chunk++)
        {
            text.Text = new TextPart { Text = string.Join(' ', words.Take(words.Length * chunk / 3)) };
            ops.Add(await writer.UpsertPartAsync(text));
        }

        var tokens = new TokenUsage { Input = (ulong)(1200 + 37 * turn), Output = (ulong)(180 + 11 * turn) };
        var finish = NewPart(assistant, "prt_05", 12);
        finish.StepFinish = new StepFinishPart { Reason = "stop", Tokens = tokens, CostUsd = 0.004 };
        ops.Add(await writer.UpsertPartAsync(finish));

        reply.CompletedAt = Timestamp.FromDateTimeOffset(at.AddSeconds(12));
        reply.Tokens = tokens;
        reply.CostUsd = 0.004;
        reply.FinishReason = "stop";
        ops.Add(await writer.UpsertMessageAsync(reply));
        return ops;
    }

    /// <summary>The last assistant answer in a state, for narration.</summary>
    public static string LastAnswer(AgentSessionState state)
    {
        foreach (var m in state.Messages.Reverse())
        {
            if (m.Role == Role.Assistant && state.PartsOf(m.Id).LastOrDefault(p => p.ContentCase == Part.ContentOneofCase.Text) is { } p)
            {
                return $"{m.Id}: \"{p.Text.Text}\"";
            }
        }

        return "(none)";
    }

    public static string Describe(AgentSessionState s) =>
        string.Create(CultureInfo.InvariantCulture, $"{s.Messages.Count} messages, {s.Parts.Values.Sum(p => p.Count)} parts, {s.Diffs.Count} diffs");
}
