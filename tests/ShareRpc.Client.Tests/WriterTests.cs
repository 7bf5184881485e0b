using System.Text;
using Grpc.Core;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

public sealed class WriterTests : IAsyncLifetime
{
    private InProcessServer _server = null!;
    private readonly TempDir _dir = new();

    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private ShareRpcClient NewClient(string outbox = "outbox.db", ShareRpcChannelOptions? channel = null) => new(new ShareRpcClientOptions
    {
        OutboxPath = _dir.File(outbox),
        Channel = channel ?? new ShareRpcChannelOptions(),
        InitialBackoff = TimeSpan.FromMilliseconds(10),
        MaxBackoff = TimeSpan.FromMilliseconds(200),
    });

    [Fact]
    public async Task Ops_are_applied_once_in_seq_order_and_a_subscriber_sees_the_log()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "session-a", "demo");
        var writer = client.OpenWriter(sturdy);
        var pending = new List<PendingOp>();
        for (var i = 0; i < 500; i++)
        {
            pending.Add(await writer.PutAsync("messages", "m" + (i % 50), Encoding.UTF8.GetBytes("v" + i)));
        }

        await writer.FlushAsync();
        var outcomes = await Task.WhenAll(pending.Select(p => p.Acked));
        Assert.All(outcomes, o => Assert.Equal(OpStatus.Applied, o.Status));
        Assert.Equal(Enumerable.Range(1, 500).Select(i => (ulong)i), outcomes.Select(o => o.Cursor));

        var docs = await client.GetAllDocumentsAsync(sturdy, "messages").ToListAsync();
        Assert.Equal(50, docs.Count);
        Assert.Equal("v499", Encoding.UTF8.GetString(docs.Single(d => d.Key == "m49").Value.ToByteArray()));

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<CommittedOp>();
        await foreach (var e in client.SubscribeAsync(sturdy, 0, false, cts.Token))
        {
            if (e.Op is { } op)
            {
                seen.Add(op);
                if (seen.Count == 500)
                {
                    break;
                }
            }
        }

        Assert.Equal(pending.Select(p => p.OpId), seen.Select(s => s.Op.OpId));
        Assert.Equal(pending.Select(p => p.Seq), seen.Select(s => s.Op.Seq));
    }

    [Fact]
    public async Task Ensure_share_from_eight_concurrent_tasks_yields_one_share()
    {
        await using var client = NewClient();
        var refs = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => client.EnsureShareAsync(_server.Address, "session-ensure"))));
        Assert.Single(refs.Distinct());
        // A second client on the same outbox file agrees too (the intent is in the file).
        await using var other = NewClient();
        Assert.Equal(refs[0], await other.EnsureShareAsync(_server.Address, "session-ensure"));
    }

    [Fact]
    public async Task Dropped_acks_replay_the_same_batches_byte_for_byte_and_ops_apply_once()
    {
        var faults = new AckDroppingHandler(dropFirstCalls: 1);
        await using var client = NewClient(channel: new ShareRpcChannelOptions { HttpHandler = faults });
        var sturdy = await client.EnsureShareAsync(_server.Address, "session-drop");
        var writer = client.OpenWriter(sturdy);
        var pending = new List<PendingOp>();
        for (var i = 0; i < 20; i++)
        {
            pending.Add(await writer.PutAsync("c", "k" + i, new byte[] { (byte)i }));
        }

        await writer.FlushAsync();
        Assert.True(faults.AppendCalls.Count >= 2, "the sender reconnected after the lost ack");
        var first = AckDroppingHandler.Frames(faults.AppendCalls[0].ToArray());
        var second = AckDroppingHandler.Frames(faults.AppendCalls[1].ToArray());
        Assert.NotEmpty(first);
        // Every batch sent on the broken stream is resent first on the next, with identical bytes.
        Assert.True(second.Count >= first.Count);
        for (var i = 0; i < first.Count; i++)
        {
            Assert.Equal(Convert.ToHexString(first[i]), Convert.ToHexString(second[i]));
        }

        // The first batch was committed before its ack was lost: its replay came back DUPLICATE.
        var firstBatch = AppendOpsRequest.Parser.ParseFrom(first[0]);
        var outcomes = (await Task.WhenAll(pending.Select(p => p.Acked))).ToDictionary(o => o.OpId);
        Assert.All(firstBatch.Ops, op => Assert.Equal(OpStatus.Duplicate, outcomes[op.OpId].Status));
        Assert.Equal(20, outcomes.Values.Select(o => o.Cursor).Distinct().Count());
        Assert.Equal(20UL, (await client.RedeemAsync(sturdy)).Cursor);
    }

    [Fact]
    public async Task Rejected_ops_complete_as_rejected_with_their_reason_and_are_not_retried()
    {
        await using var client = NewClient();
        var sturdy = await client.EnsureShareAsync(_server.Address, "session-reject");
        var writer = client.OpenWriter(sturdy);
        var first = await writer.PutAsync("c", "k", new byte[] { 1 });
        var conflict = await writer.PutAsync("c", "k", new byte[] { 2 }, expectedVersion: 7);
        var missing = await writer.PutAsync("c", "k2", new byte[] { 3 }, dependsOn: new[] { Guid.CreateVersion7().ToString() });
        var after = await writer.PutAsync("c", "k", new byte[] { 4 }, expectedVersion: 1, dependsOn: new[] { first.OpId });
        await writer.FlushAsync();
        Assert.Equal(OpStatus.Applied, (await first.Acked).Status);
        Assert.Equal(RejectReason.VersionConflict, (await conflict.Acked).RejectReason);
        Assert.Equal(RejectReason.DependencyMissing, (await missing.Acked).RejectReason);
        Assert.Equal(OpStatus.Applied, (await after.Acked).Status);
        var status = await client.Outbox.GetStatusAsync(writer.ShareId);
        Assert.Equal((0L, 2L), (status.PendingOps, status.RejectedOps));
    }

    [Fact]
    public async Task A_revoked_holder_stops_with_permission_denied_and_keeps_its_ops_while_another_redeems_and_goes_on()
    {
        await using var owner = NewClient("owner.db");
        var ownerRef = await owner.EnsureShareAsync(_server.Address, "session-revoke");
        var keep = await owner.DelegateAsync(ownerRef, new[] { Right.Read, Right.Append });
        var drop = await owner.DelegateAsync(ownerRef, new[] { Right.Read, Right.Append });

        await using var kept = NewClient("kept.db");
        await using var dropped = NewClient("dropped.db");
        var keptWriter = kept.OpenWriter(keep.SturdyRef);
        var droppedWriter = dropped.OpenWriter(drop.SturdyRef);
        // Before the revoke: the server ends the writer's open stream as the revoke returns, so it may stop at once.
        var stoppedEvent = new TaskCompletionSource<ShareRpcCallException>();
        droppedWriter.Stopped += (_, e) => stoppedEvent.TrySetResult(e);
        await keptWriter.PutAsync("c", "a", new byte[] { 1 });
        await droppedWriter.PutAsync("c", "b", new byte[] { 1 });
        await keptWriter.FlushAsync();
        await droppedWriter.FlushAsync();

        var revoked = await owner.RevokeAsync(ownerRef, drop.CapabilityId);
        Assert.Contains(drop.CapabilityId, revoked.RevokedCapabilityIds);

        var late = await droppedWriter.PutAsync("c", "b", new byte[] { 2 });
        var ex = await Assert.ThrowsAsync<ShareRpcCallException>(() => droppedWriter.FlushAsync());
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Equal("revoked", ex.Reason);
        Assert.Equal("revoked", (await stoppedEvent.Task.WaitAsync(TimeSpan.FromSeconds(30))).Reason);
        await Assert.ThrowsAsync<ShareRpcCallException>(() => late.Acked);
        var progress = await droppedWriter.GetProgressAsync();
        Assert.True(progress.Stopped);
        Assert.Equal(1, progress.PendingOps);

        // The other holder's live ref is now from an old epoch: its sender redeems and goes on.
        var next = await keptWriter.PutAsync("c", "a", new byte[] { 2 });
        await keptWriter.FlushAsync();
        Assert.Equal(OpStatus.Applied, (await next.Acked).Status);
    }
}
