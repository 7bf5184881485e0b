using Google.Protobuf;
using Grpc.Core;
using Sharerpc.Agent.V1;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.AgentSession.Tests;

/// <summary>The profile at its edges: records it cannot use, bad ids and sizes, revocation, repeats and gaps.</summary>
public sealed partial class AgentSessionTests
{
    [Fact]
    public async Task The_reader_skips_records_it_cannot_use_and_ignores_other_collections()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "ses_skip");
        var raw = client.OpenWriter(sturdy);
        var writer = new AgentSessionWriter(raw);
        var written = new Written();
        await UpsertSession(writer, written, NewSession("skips"));
        await UpsertMessage(writer, written, UserMessage());
        await Applied(await raw.PutAsync("messages", "msg_bad", new byte[] { 0xff, 0xff, 0xff }, AgentSessionProfile.MessageContentType));
        await Applied(await raw.PutAsync("messages", "msg_json", "{}"u8.ToArray(), "application/json"));
        await Applied(await raw.PutAsync("parts", "no-separator", TextPart("m", "p", "x").ToByteArray(), AgentSessionProfile.PartContentType));
        await Applied(await raw.PutAsync("session", "other", NewSession("x").ToByteArray(), AgentSessionProfile.SessionContentType));
        written.Cursor = await Applied(await raw.PutAsync("notes", "n1", "free text"u8.ToArray(), "text/plain"));

        var reader = new AgentSessionReader(client, sturdy);
        using var stop = new CancellationTokenSource();
        var follow = reader.FollowAsync(stop.Token);
        var state = await reader.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        AssertSameSession(written.ToState(), state);
        Assert.Equal(new[] { "messages/msg_bad", "messages/msg_json", "parts/no-separator", "session/other" },
            reader.Skipped.Select(s => s.Collection + "/" + s.Key).Order(StringComparer.Ordinal));
        Assert.Equal(4, reader.SkippedCount);
        Assert.Contains("content type 'application/json'", reader.Skipped.Single(s => s.Key == "msg_json").Reason);

        // The same record set as a live op is skipped the same way, and the view goes on.
        await Applied(await raw.PutAsync("models", "list", new byte[] { 0x0a, 0xff }, AgentSessionProfile.ModelListContentType));
        written.Cursor = await Applied(await writer.SetModelsAsync(Models()));
        written.Models = Models();
        state = await reader.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        AssertSameSession(written.ToState(), state);
        Assert.Equal(5, reader.SkippedCount);

        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => follow);
    }

    [Fact]
    public async Task The_writer_refuses_bad_ids_and_oversized_records_before_they_reach_the_outbox()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "ses_refuse");
        var writer = new AgentSessionWriter(client.OpenWriter(sturdy), maxValueBytes: 1024);
        var slash = await Assert.ThrowsAsync<ArgumentException>(() => writer.UpsertMessageAsync(new Message { Id = "a/b" }));
        Assert.Contains("must not contain '/'", slash.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => writer.UpsertMessageAsync(new Message()));
        await Assert.ThrowsAsync<ArgumentException>(() => writer.UpsertPartAsync(new Part { Id = "p" }));
        var big = await Assert.ThrowsAsync<ArgumentException>(() => writer.AppendDiffAsync(new FileDiff { Path = "x", After = new string('x', 2000) }));
        Assert.Contains("at most 1024", big.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => writer.DeletePartAsync("m", new string('p', 600)));

        var progress = await writer.Writer.GetProgressAsync();
        Assert.Equal(0, progress.PendingOps);
        Assert.Equal(0UL, (await client.RedeemAsync(sturdy)).Cursor);
    }

    [Fact]
    public async Task A_revoked_reader_stops_and_its_waiters_fail_instead_of_hanging()
    {
        await using var owner = NewClient();
        var sturdy = await owner.EnsureShareAsync(_server.Address, "ses_revoked_reader");
        var writer = new AgentSessionWriter(owner.OpenWriter(sturdy));
        var written = new Written();
        await UpsertSession(writer, written, NewSession("revoked"));
        var grant = await owner.DelegateAsync(sturdy, new[] { Right.Read });

        await using var readerClient = NewClient(outbox: null);
        var reader = new AgentSessionReader(readerClient, grant.SturdyRef);
        var follow = reader.FollowAsync();
        await reader.WaitForCursorAsync(written.Cursor).WaitAsync(s_patience);
        var never = reader.WaitForCursorAsync(written.Cursor + 1000);

        await owner.RevokeAsync(sturdy, grant.CapabilityId);
        var stopped = await Assert.ThrowsAsync<ShareRpcCallException>(() => follow.WaitAsync(s_patience));
        Assert.Equal(StatusCode.PermissionDenied, stopped.StatusCode);
        var waiter = await Assert.ThrowsAsync<InvalidOperationException>(() => never.WaitAsync(s_patience));
        Assert.Same(stopped, waiter.InnerException);
        AssertSameSession(written.ToState(), reader.State); // what it had stays readable
    }

    [Fact]
    public async Task Applying_ops_ignores_repeats_and_refuses_gaps()
    {
        await using var client = new ShareRpcClient();
        var reader = new AgentSessionReader(client, "sharerpc://127.0.0.1:1/share/cap#c2VjcmV0");
        var session = NewSession("offline");
        reader.ApplySnapshot(5, new[] { new Document { Collection = "session", Key = "info", Value = session.ToByteString(), ContentType = AgentSessionProfile.SessionContentType, Cursor = 5 } });
        Assert.Equal((5UL, true), (reader.Cursor, reader.IsLoaded));
        Assert.Equal(session, reader.State.Session);

        var diff = Diff("a.txt", 1);
        reader.Apply(new CommittedOp { Cursor = 6, Op = new Op { OpId = "o6", Append = new Append { Collection = "diffs", Value = diff.ToByteString() } } });
        reader.Apply(new CommittedOp { Cursor = 6, Op = new Op { OpId = "o6", Append = new Append { Collection = "diffs", Value = diff.ToByteString() } } });
        Assert.Equal(new[] { new CommittedDiff(6, diff) }, reader.State.Diffs);

        var gap = Assert.Throws<InvalidDataException>(() => reader.Apply(new CommittedOp { Cursor = 8, Op = new Op { OpId = "o8", Delete = new Delete { Collection = "session", Key = "info" } } }));
        Assert.Contains("cursor 8", gap.Message);
        reader.Apply(new CommittedOp { Cursor = 7, Op = new Op { OpId = "o7", Delete = new Delete { Collection = "session", Key = "info" } } });
        Assert.Null(reader.State.Session);
        Assert.Equal(7UL, reader.State.Cursor);
    }

    /// <summary>Runs a hook before each GetSnapshot request is sent.</summary>
    private sealed class BeforeSnapshotPageHandler(Func<Task> hook) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.AbsolutePath.EndsWith("/GetSnapshot", StringComparison.Ordinal))
            {
                await hook();
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }
}
