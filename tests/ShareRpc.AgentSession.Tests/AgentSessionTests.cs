using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Sharerpc.Agent.V1;
using ShareRpc.Client;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.AgentSession.Tests;

public sealed partial class AgentSessionTests : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 22, 3, 0, 0, TimeSpan.Zero);
    private readonly TempDir _dir = new();
    private InProcessServer _server = null!;

    // Small pages and chunks, so snapshots come in several GetSnapshot pages / Subscribe chunks.
    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync(o => o.Limits.MaxSnapshotPageSize = 7);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private ShareRpcClient NewClient(string? outbox = "outbox.db", ShareRpcChannelOptions? channel = null) => new(new ShareRpcClientOptions
    {
        OutboxPath = outbox is null ? null : _dir.File(outbox),
        Channel = channel ?? new ShareRpcChannelOptions(),
        InitialBackoff = TimeSpan.FromMilliseconds(10),
        MaxBackoff = TimeSpan.FromMilliseconds(200),
    });

    /// <summary>What a test wrote, kept the way the reader must show it.</summary>
    private sealed class Written
    {
        public Session? Session;
        public readonly Dictionary<string, Message> Messages = new();
        public readonly SortedDictionary<string, Part> Parts = new(StringComparer.Ordinal);
        public readonly List<CommittedDiff> Diffs = new();
        public ModelList? Models;
        public ulong Cursor;

        public AgentSessionState ToState() => new(
            Cursor,
            Session,
            Messages.Values.OrderBy(m => m.CreatedAt.ToDateTimeOffset()).ThenBy(m => m.Id, StringComparer.Ordinal).ToArray(),
            Parts.Values.GroupBy(p => p.MessageId).ToDictionary(g => g.Key, g => (IReadOnlyList<Part>)g.ToArray()),
            Diffs.ToArray(),
            Models?.Models.ToArray() ?? [],
            Models?.DefaultModel);
    }

    private static Timestamp At(int seconds) => Timestamp.FromDateTimeOffset(s_t0.AddSeconds(seconds));

    private static async Task<ulong> Applied(PendingOp op)
    {
        var outcome = await op.Acked.WaitAsync(s_patience);
        Assert.Equal(OpStatus.Applied, outcome.Status);
        return outcome.Cursor;
    }

    private static async Task UpsertSession(AgentSessionWriter w, Written into, Session s)
    {
        into.Cursor = await Applied(await w.UpsertSessionAsync(s));
        into.Session = s;
    }

    private static async Task UpsertMessage(AgentSessionWriter w, Written into, Message m)
    {
        into.Cursor = await Applied(await w.UpsertMessageAsync(m));
        into.Messages[m.Id] = m;
    }

    private static async Task UpsertPart(AgentSessionWriter w, Written into, Part p)
    {
        into.Cursor = await Applied(await w.UpsertPartAsync(p));
        into.Parts[p.MessageId + "/" + p.Id] = p;
    }

    private static async Task AppendDiff(AgentSessionWriter w, Written into, FileDiff d)
    {
        into.Cursor = await Applied(await w.AppendDiffAsync(d));
        into.Diffs.Add(new CommittedDiff(into.Cursor, d));
    }

    private static async Task SetModels(AgentSessionWriter w, Written into, ModelList list)
    {
        into.Cursor = await Applied(await w.SetModelsAsync(list.Models, list.DefaultModel));
        into.Models = list;
    }

    private static Session NewSession(string title) => new()
    {
        Id = "ses_01J0AGENT",
        Title = title,
        Directory = "/work/project",
        ParentId = "ses_01J0PARENT",
        CreatedAt = At(0),
        UpdatedAt = At(1),
        ProjectId = "prj_1",
        Agent = "opencode/0.15.0",
        Labels = { ["share"] = "team" },
    };

    // msg_b is created before msg_a: messages read back ordered by created_at, not by id.
    private static Message UserMessage() => new()
    {
        Id = "msg_b",
        SessionId = "ses_01J0AGENT",
        Role = Role.User,
        CreatedAt = At(10),
        Model = new ModelRef { ProviderId = "anthropic", ModelId = "claude-sonnet-4" },
    };

    private static Message AssistantMessage(bool completed) => new()
    {
        Id = "msg_a",
        SessionId = "ses_01J0AGENT",
        Role = Role.Assistant,
        CreatedAt = At(11),
        CompletedAt = completed ? At(20) : null,
        ParentId = "msg_b",
        Model = new ModelRef { ProviderId = "anthropic", ModelId = "claude-sonnet-4" },
        Tokens = new TokenUsage { Input = 1200, Output = 340, Reasoning = 50, CacheRead = 800 },
        CostUsd = 0.0123,
        FinishReason = completed ? "stop" : "",
    };

    private static Part TextPart(string messageId, string id, string text) => new()
    {
        Id = id,
        MessageId = messageId,
        SessionId = "ses_01J0AGENT",
        StartedAt = At(12),
        Text = new Sharerpc.Agent.V1.TextPart { Text = text },
    };

    private static Part ToolPart(string id, ToolStatus status) => new()
    {
        Id = id,
        MessageId = "msg_a",
        SessionId = "ses_01J0AGENT",
        StartedAt = At(13),
        EndedAt = status == ToolStatus.Completed ? At(14) : null,
        Tool = new Sharerpc.Agent.V1.ToolPart
        {
            CallId = "call_1",
            Tool = "bash",
            Status = status,
            InputJson = "{\"command\":\"dotnet test\"}",
            Output = status == ToolStatus.Completed ? "Passed! 12 tests" : "",
            Title = "dotnet test",
        },
    };

    private static FileDiff Diff(string path, int n) => new()
    {
        Path = path,
        Before = "line\n",
        After = "line\nline " + n + "\n",
        Patch = $"--- a/{path}\n+++ b/{path}\n@@ -1 +1,2 @@\n line\n+line {n}\n",
        Additions = 1,
        Deletions = 0,
        Change = ChangeKind.Modified,
        MessageId = "msg_a",
        PartId = "prt_02",
        CreatedAt = At(15 + n),
    };

    private static ModelList Models() => new()
    {
        Models =
        {
            new Model { ProviderId = "anthropic", ModelId = "claude-sonnet-4", Name = "Claude Sonnet 4", Limits = new ModelLimits { ContextTokens = 200_000, OutputTokens = 64_000 }, Reasoning = true, ToolCall = true, Attachment = true, Cost = new ModelCost { Input = 3, Output = 15 } },
            new Model { ProviderId = "openai", ModelId = "gpt-5", Name = "GPT-5", Limits = new ModelLimits { ContextTokens = 400_000, OutputTokens = 128_000 }, ToolCall = true },
        },
        DefaultModel = new ModelRef { ProviderId = "anthropic", ModelId = "claude-sonnet-4" },
    };

    /// <summary>First half: the session, the user's message and its part, the assistant's message in progress.</summary>
    private static async Task WriteFirstHalf(AgentSessionWriter w, Written written)
    {
        await UpsertSession(w, written, NewSession("Fix the flaky test"));
        await UpsertMessage(w, written, UserMessage());
        await UpsertPart(w, written, TextPart("msg_b", "prt_01", "Please fix the flaky test."));
        await UpsertMessage(w, written, AssistantMessage(completed: false));
        await UpsertPart(w, written, new Part { Id = "prt_01", MessageId = "msg_a", SessionId = "ses_01J0AGENT", Reasoning = new ReasoningPart { Text = "Look at the test first." } });
        await UpsertPart(w, written, ToolPart("prt_02", ToolStatus.Running));
    }

    /// <summary>Second half: the tool completes, diffs, the answer, models, the message completes, the title changes.</summary>
    private static async Task WriteSecondHalf(AgentSessionWriter w, Written written)
    {
        await UpsertPart(w, written, ToolPart("prt_02", ToolStatus.Completed));
        await AppendDiff(w, written, Diff("src/a.cs", 1));
        await AppendDiff(w, written, Diff("src/b.cs", 2));
        await UpsertPart(w, written, TextPart("msg_a", "prt_03", "Fixed: the test waited on a fixed sleep."));
        await UpsertPart(w, written, new Part { Id = "prt_04", MessageId = "msg_a", SessionId = "ses_01J0AGENT", StepFinish = new StepFinishPart { Reason = "stop", Tokens = new TokenUsage { Input = 1200, Output = 340 }, CostUsd = 0.0123 } });
        await SetModels(w, written, Models());
        await UpsertMessage(w, written, AssistantMessage(completed: true));
        await UpsertSession(w, written, NewSession("Fix the flaky test (done)"));
    }

    private static void AssertSameSession(AgentSessionState expected, AgentSessionState actual)
    {
        Assert.Equal(expected.Session, actual.Session);
        Assert.Equal(expected.Messages, actual.Messages);
        Assert.Equal(expected.Parts.Keys.Order(StringComparer.Ordinal), actual.Parts.Keys.Order(StringComparer.Ordinal));
        foreach (var (messageId, parts) in expected.Parts)
        {
            Assert.Equal(parts, actual.PartsOf(messageId));
        }

        Assert.Equal(expected.Diffs, actual.Diffs);
        Assert.Equal(expected.Models, actual.Models);
        Assert.Equal(expected.DefaultModel, actual.DefaultModel);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public async Task Records_map_to_the_documented_collections_keys_and_content_types()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "ses_01J0AGENT", "agent session");
        var writer = new AgentSessionWriter(client.OpenWriter(sturdy));
        var written = new Written();
        await WriteFirstHalf(writer, written);
        await WriteSecondHalf(writer, written);

        var docs = await client.GetAllDocumentsAsync(sturdy).ToListAsync();
        var byPlace = docs.ToDictionary(d => (d.Collection, d.Key));
        var diffKeys = written.Diffs.Select(d => d.Cursor.ToString(CultureInfo.InvariantCulture)).ToArray();
        var expected = new (string Collection, string Key, string ContentType)[]
        {
            ("session", "info", "application/x-protobuf; type=sharerpc.agent.v1.Session"),
            ("messages", "msg_a", "application/x-protobuf; type=sharerpc.agent.v1.Message"),
            ("messages", "msg_b", "application/x-protobuf; type=sharerpc.agent.v1.Message"),
            ("parts", "msg_a/prt_01", "application/x-protobuf; type=sharerpc.agent.v1.Part"),
            ("parts", "msg_a/prt_02", "application/x-protobuf; type=sharerpc.agent.v1.Part"),
            ("parts", "msg_a/prt_03", "application/x-protobuf; type=sharerpc.agent.v1.Part"),
            ("parts", "msg_a/prt_04", "application/x-protobuf; type=sharerpc.agent.v1.Part"),
            ("parts", "msg_b/prt_01", "application/x-protobuf; type=sharerpc.agent.v1.Part"),
            ("diffs", diffKeys[0], "application/x-protobuf; type=sharerpc.agent.v1.FileDiff"),
            ("diffs", diffKeys[1], "application/x-protobuf; type=sharerpc.agent.v1.FileDiff"),
            ("models", "list", "application/x-protobuf; type=sharerpc.agent.v1.ModelList"),
        };
        Assert.Equal(
            expected.Select(e => $"{e.Collection}|{e.Key}|{e.ContentType}").Order(StringComparer.Ordinal),
            docs.Select(d => $"{d.Collection}|{d.Key}|{d.ContentType}").Order(StringComparer.Ordinal));

        // The values are the protobuf bytes of the records.
        Assert.Equal(written.Session, Session.Parser.ParseFrom(byPlace[("session", "info")].Value));
        Assert.Equal(written.Messages["msg_a"], Message.Parser.ParseFrom(byPlace[("messages", "msg_a")].Value));
        Assert.Equal(written.Parts["msg_a/prt_02"], Part.Parser.ParseFrom(byPlace[("parts", "msg_a/prt_02")].Value));
        Assert.Equal(written.Diffs[1].Diff, FileDiff.Parser.ParseFrom(byPlace[("diffs", diffKeys[1])].Value));
        Assert.Equal(written.Models, ModelList.Parser.ParseFrom(byPlace[("models", "list")].Value));

        // The parts of one message are adjacent in key order (the order snapshots come in).
        var partKeys = docs.Where(d => d.Collection == "parts").Select(d => d.Key).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "msg_a", "msg_a", "msg_a", "msg_a", "msg_b" }, partKeys.Select(k => k[..k.IndexOf('/')]));
        Assert.Equal("msg_a/prt_02", AgentSessionProfile.PartKey("msg_a", "prt_02"));
        Assert.True(AgentSessionProfile.TryParsePartKey("msg_a/prt/02", out var m, out var p));
        Assert.Equal(("msg_a", "prt/02"), (m, p));
    }

    [Fact]
    public async Task A_reader_from_a_snapshot_following_live_ops_reaches_what_was_written_and_equals_a_fresh_snapshot()
    {
        await using var client = NewClient();
        await using var readerClient = NewClient(outbox: null); // reading needs no outbox
        var sturdy = await client.EnsureShareAsync(_server.Address, "ses_01J0AGENT");
        var readRef = (await client.DelegateAsync(sturdy, new[] { Right.Read })).SturdyRef;
        var writer = new AgentSessionWriter(client.OpenWriter(sturdy));
        var written = new Written();
        await WriteFirstHalf(writer, written);

        // Reader A: a GetSnapshot snapshot (several pages), then follows.
        var readerA = new AgentSessionReader(readerClient, readRef) { SnapshotPageSize = 3 };
        var loaded = await readerA.LoadSnapshotAsync().WaitAsync(s_patience);
        Assert.Equal(written.Cursor, loaded.Cursor);
        Assert.Equal(written.Cursor, readerA.Cursor);
        AssertSameSession(written.ToState(), loaded);

        using var stop = new CancellationTokenSource();
        var followA = readerA.FollowAsync(stop.Token);
        // Reader B: nothing loaded, so it starts from the Subscribe snapshot (several chunks).
        var readerB = new AgentSessionReader(readerClient, readRef);
        var followB = readerB.FollowAsync(stop.Token);
        var atHalf = await readerB.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        AssertSameSession(written.ToState(), atHalf);

        await WriteSecondHalf(writer, written);
        var expected = written.ToState();
        var a = await readerA.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        var b = await readerB.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        Assert.Equal(written.Cursor, a.Cursor);
        Assert.Equal(written.Cursor, b.Cursor);
        AssertSameSession(expected, a);
        AssertSameSession(expected, b);
        Assert.Equal(new[] { "msg_b", "msg_a" }, a.Messages.Select(m => m.Id)); // created_at order
        Assert.Equal(new[] { "prt_01", "prt_02", "prt_03", "prt_04" }, a.PartsOf("msg_a").Select(p => p.Id));
        Assert.Equal(ToolStatus.Completed, a.PartsOf("msg_a")[1].Tool.Status);

        var fresh = await AgentSessionReader.ReadSnapshotAsync(readerClient, readRef, pageSize: 4).WaitAsync(s_patience);
        Assert.Equal(written.Cursor, fresh.Cursor);
        AssertSameSession(a, fresh);
        Assert.Empty(readerA.Skipped);
        Assert.Empty(readerB.Skipped);

        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => followA);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => followB);
    }

    [Fact]
    public async Task Deleting_a_part_or_message_shows_in_a_following_reader_and_a_fresh_snapshot()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "ses_delete");
        var writer = new AgentSessionWriter(client.OpenWriter(sturdy));
        var written = new Written();
        await WriteFirstHalf(writer, written);
        await WriteSecondHalf(writer, written);

        var reader = new AgentSessionReader(client, sturdy);
        using var stop = new CancellationTokenSource();
        var follow = reader.FollowAsync(stop.Token);
        var before = await reader.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        Assert.Contains(before.PartsOf("msg_a"), p => p.Id == "prt_02");

        var cursor = await Applied(await writer.DeletePartAsync("msg_a", "prt_02"));
        written.Parts.Remove("msg_a/prt_02");
        written.Cursor = cursor;
        var after = await reader.WaitForCursorAsync(cursor).WaitAsync(s_patience);
        Assert.Equal(new[] { "prt_01", "prt_03", "prt_04" }, after.PartsOf("msg_a").Select(p => p.Id));
        AssertSameSession(written.ToState(), after);

        // The user's message and its only part go: the message id leaves Parts too.
        await Applied(await writer.DeletePartAsync("msg_b", "prt_01"));
        written.Cursor = await Applied(await writer.DeleteMessageAsync("msg_b"));
        written.Parts.Remove("msg_b/prt_01");
        written.Messages.Remove("msg_b");
        var gone = await reader.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        Assert.DoesNotContain(gone.Messages, m => m.Id == "msg_b");
        Assert.False(gone.Parts.ContainsKey("msg_b"));
        Assert.Empty(gone.PartsOf("msg_b"));
        AssertSameSession(written.ToState(), gone);

        var fresh = await AgentSessionReader.ReadSnapshotAsync(client, sturdy).WaitAsync(s_patience);
        Assert.Equal(written.Cursor, fresh.Cursor);
        AssertSameSession(gone, fresh);

        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => follow);
    }

    [Fact]
    public async Task A_snapshot_read_in_pages_while_writes_land_between_them_equals_the_log_replayed_to_its_cursor()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "ses_pages");
        var writer = new AgentSessionWriter(client.OpenWriter(sturdy));
        await writer.UpsertSessionAsync(NewSession("paged"));
        for (var i = 0; i < 30; i++)
        {
            await writer.UpsertPartAsync(TextPart("msg_" + (i % 3), $"prt_{i:D2}", "text " + i));
        }

        await writer.FlushAsync().WaitAsync(s_patience);

        // Before each GetSnapshot page after the first, a write lands: into ranges already read
        // (updates, deletes, new keys) and ones not read yet, so pages answer at different cursors.
        var pages = 0;
        var lastCursor = 0UL;
        var hook = new BeforeSnapshotPageHandler(async () =>
        {
            var page = Interlocked.Increment(ref pages);
            if (page == 1)
            {
                return;
            }

            var ops = new[]
            {
                await writer.UpsertPartAsync(TextPart("msg_0", "prt_00", "rewritten on page " + page)),
                await writer.DeletePartAsync("msg_0", $"prt_{3 * page:D2}"),
                await writer.UpsertPartAsync(TextPart("msg_1", $"prt_new_{page}", "added on page " + page)),
                await writer.UpsertPartAsync(TextPart("msg_2", "prt_29", "last, changed on page " + page)),
                await writer.AppendDiffAsync(Diff("src/p.cs", page)),
            };
            foreach (var op in ops)
            {
                lastCursor = Math.Max(lastCursor, await Applied(op));
            }
        });
        await using var readerClient = NewClient(outbox: null, channel: new ShareRpcChannelOptions { HttpHandler = hook });
        var loaded = await AgentSessionReader.ReadSnapshotAsync(readerClient, sturdy, pageSize: 7).WaitAsync(s_patience);
        Assert.True(pages >= 3, $"the snapshot took {pages} pages");
        Assert.Equal(lastCursor, loaded.Cursor);

        // The reference: every op of the log, 1..cursor, applied in order.
        var replay = new AgentSessionReader(client, sturdy);
        using var cts = new CancellationTokenSource(s_patience);
        await foreach (var e in client.SubscribeAsync(sturdy, 0, false, cts.Token))
        {
            if (e.Op is { } op)
            {
                replay.Apply(op);
                if (op.Cursor == loaded.Cursor)
                {
                    break;
                }
            }
        }

        Assert.Equal(loaded.Cursor, replay.Cursor);
        AssertSameSession(replay.State, loaded);
        Assert.Equal("rewritten on page " + pages, loaded.PartsOf("msg_0")[0].Text.Text);
        Assert.Equal(pages - 1, loaded.Diffs.Count);
    }
}
