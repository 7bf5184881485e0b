using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class ReadTests : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture(o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(50);
            o.Limits.MaxSnapshotPageSize = 2;
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    [Fact]
    public async Task GetSnapshot_pages_through_live_documents_in_order()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "b", "2", "b2"), Put(2, "a", "1", "a1"), Put(3, "b", "1", "b1"), Put(4, "a", "2", "a2"),
            Put(5, "c", "1", "c1"), Delete(6, "c", "1"));
        var keys = new List<string>();
        string token = "";
        var pages = 0;
        do
        {
            var page = await _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { PageSize = 3, PageToken = token }); // clamped to 2
            Assert.Equal(6UL, page.Cursor);
            Assert.InRange(page.Documents.Count, 1, 2);
            keys.AddRange(page.Documents.Select(d => d.Collection + "/" + d.Key));
            token = page.NextPageToken;
            pages++;
        } while (token != "");
        Assert.Equal(["a/1", "a/2", "b/1", "b/2"], keys);
        Assert.Equal(2, pages);

        // The default page size (page_size 0) is capped by MaxSnapshotPageSize too.
        var byDefault = await _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest());
        Assert.Equal(2, byDefault.Documents.Count);
        Assert.NotEqual("", byDefault.NextPageToken);

        var onlyB = await _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { Collection = "b", PageSize = 2 });
        Assert.Equal(["1", "2"], onlyB.Documents.Select(d => d.Key));
        Assert.Equal((1UL, 3UL), (onlyB.Documents[0].Version, onlyB.Documents[0].Cursor));
    }

    [Fact]
    public async Task Subscribe_yields_the_log_suffix_then_live_ops_then_heartbeats()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"), AppendOp(3, "m", "x"), Delete(4, "d", "a"), Put(5, "d", "c", "1"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var e = _f.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 3 }, cts.Token).GetAsyncEnumerator(cts.Token);

        var got = new List<CommittedOp>();
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await e.MoveNextAsync());
            got.Add(e.Current.Op);
        }
        Assert.Equal([3UL, 4, 5], got.Select(o => o.Cursor));
        Assert.Equal(Op.KindOneofCase.Append, got[0].Op.KindCase);
        Assert.Equal(Op.KindOneofCase.Delete, got[1].Op.KindCase);
        Assert.Equal("p", got[2].ProducerId);
        Assert.Equal(5UL, got[2].Op.Seq);

        // Live: the next op arrives once committed (a heartbeat may come first when idle).
        var live = _f.AppendAsync(owner, "p", Put(6, "d", "z", "live"));
        CommittedOp? next = null;
        while (next is null)
        {
            Assert.True(await e.MoveNextAsync());
            if (e.Current.EventCase == SubscribeResponse.EventOneofCase.Op) next = e.Current.Op;
            else Assert.Equal(SubscribeResponse.EventOneofCase.Heartbeat, e.Current.EventCase);
        }
        await live;
        Assert.Equal((6UL, "live"), (next.Cursor, next.Op.Put.Value.ToStringUtf8()));

        // Idle: heartbeats carry the head.
        Assert.True(await e.MoveNextAsync());
        Assert.Equal(SubscribeResponse.EventOneofCase.Heartbeat, e.Current.EventCase);
        Assert.Equal(6UL, e.Current.Heartbeat.Cursor);
    }

    [Fact]
    public async Task Subscribe_with_snapshot_sends_chunks_then_ops_after_the_snapshot_and_matches_GetSnapshot()
    {
        var (owner, _) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"), Put(3, "d", "c", "1"), Put(4, "d", "a", "2"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var e = _f.Engine.SubscribeAsync(owner, new SubscribeRequest { IncludeSnapshot = true }, cts.Token).GetAsyncEnumerator(cts.Token);
        var docs = new List<Document>();
        var chunks = 0;
        while (true)
        {
            Assert.True(await e.MoveNextAsync());
            Assert.Equal(SubscribeResponse.EventOneofCase.Snapshot, e.Current.EventCase);
            Assert.Equal(4UL, e.Current.Snapshot.Cursor);
            docs.AddRange(e.Current.Snapshot.Documents);
            chunks++;
            if (e.Current.Snapshot.LastChunk) break;
        }
        Assert.Equal(2, chunks);
        var page = await _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { PageSize = 100 });
        var all = new List<Document>(page.Documents);
        while (page.NextPageToken != "")
        {
            page = await _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { PageToken = page.NextPageToken });
            all.AddRange(page.Documents);
        }
        Assert.Equal(all, docs);

        await _f.AppendAsync(owner, "p", Put(5, "d", "e", "1"));
        CommittedOp? op = null;
        while (op is null)
        {
            Assert.True(await e.MoveNextAsync());
            if (e.Current.EventCase == SubscribeResponse.EventOneofCase.Op) op = e.Current.Op;
        }
        Assert.Equal(5UL, op.Cursor);
    }

    [Fact]
    public async Task Revoke_ends_open_subscriptions_revoked_holders_with_permission_denied_others_with_epoch_stale()
    {
        var (owner, _) = await _f.NewShareAsync();
        var child = await _f.Engine.DelegateAsync(owner, new DelegateCapabilityRequest { Rights = { Right.Read }, Secret = Google.Protobuf.ByteString.CopyFrom(NewSecret()) }, Endpoint);
        var childLive = await _f.RedeemAsync(child.SturdyRef);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var ownerSub = _f.Engine.SubscribeAsync(owner, new SubscribeRequest(), cts.Token).GetAsyncEnumerator(cts.Token);
        await using var childSub = _f.Engine.SubscribeAsync(childLive, new SubscribeRequest(), cts.Token).GetAsyncEnumerator(cts.Token);
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        Assert.True(await NextOpAsync(ownerSub));
        Assert.True(await NextOpAsync(childSub));

        await _f.Engine.RevokeAsync(owner, new RevokeCapabilityRequest { CapabilityId = child.CapabilityId });
        await Expect.Fails(async () => { while (await childSub.MoveNextAsync()) { } }, ShareRpcStatus.PermissionDenied, Reasons.Revoked);
        await Expect.Fails(async () => { while (await ownerSub.MoveNextAsync()) { } }, ShareRpcStatus.Unauthenticated, Reasons.EpochStale);
    }

    [Fact]
    public async Task A_share_has_a_wake_up_signal_only_while_a_stream_watches_it()
    {
        var (owner, _) = await _f.NewShareAsync();
        var (other, _) = await _f.NewShareAsync();
        await _f.AppendAsync(other, "p", Put(1, "d", "a", "1")); // commits on an unwatched share leave nothing behind
        Assert.Equal(0, _f.Engine.Notifier.WatchedShares);

        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            await using var sub = _f.Engine.SubscribeAsync(owner, new SubscribeRequest(), cts.Token).GetAsyncEnumerator(cts.Token);
            using var fenceStop = new CancellationTokenSource();
            var fence = _f.Engine.WaitForFenceAsync(owner, fenceStop.Token);
            await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
            Assert.True(await NextOpAsync(sub));
            Assert.Equal(1, _f.Engine.Notifier.WatchedShares); // one signal, shared by the subscriber and the fence waiter
            await fenceStop.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fence);
            Assert.Equal(1, _f.Engine.Notifier.WatchedShares); // the subscriber still watches
        }

        Assert.Equal(0, _f.Engine.Notifier.WatchedShares); // the stream ended: the signal is gone
        Assert.Null(_f.Engine.Notifier.Find(owner.ShareId));
    }

    [Fact]
    public async Task Subscribe_needs_read()
    {
        var (owner, _) = await _f.NewShareAsync();
        var appender = await _f.Engine.DelegateAsync(owner, new DelegateCapabilityRequest { Rights = { Right.Append }, Secret = Google.Protobuf.ByteString.CopyFrom(NewSecret()) }, Endpoint);
        var live = await _f.RedeemAsync(appender.SturdyRef);
        await Expect.Fails(async () => { await foreach (var _ in _f.Engine.SubscribeAsync(live, new SubscribeRequest())) { } }, ShareRpcStatus.PermissionDenied, Reasons.Rights);
        await Expect.Fails(() => _f.Engine.GetSnapshotAsync(live, new GetSnapshotRequest()), ShareRpcStatus.PermissionDenied, Reasons.Rights);
    }

    private static async Task<bool> NextOpAsync(IAsyncEnumerator<SubscribeResponse> e)
    {
        while (await e.MoveNextAsync())
            if (e.Current.EventCase == SubscribeResponse.EventOneofCase.Op) return true;
        return false;
    }
}

public class SubscriberLimitTests
{
    [Fact]
    public async Task Subscribers_per_share_are_limited_and_freed_when_a_stream_ends()
    {
        await using var f = new EngineFixture(o => o.Limits.MaxSubscribersPerShare = 1);
        var (owner, _) = await f.NewShareAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var first = f.Engine.SubscribeAsync(owner, new SubscribeRequest { IncludeSnapshot = true }, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await first.MoveNextAsync()); // the subscription is open
        var e = await Expect.Fails(async () => { await foreach (var _ in f.Engine.SubscribeAsync(owner, new SubscribeRequest())) { } },
            ShareRpcStatus.ResourceExhausted, Reasons.Limit, "subscribe");
        Assert.Contains("MaxSubscribersPerShare", e.Message);
        await first.DisposeAsync();
        var again = f.Engine.SubscribeAsync(owner, new SubscribeRequest { IncludeSnapshot = true }).GetAsyncEnumerator();
        Assert.True(await again.MoveNextAsync());
        await again.DisposeAsync();
    }
}
