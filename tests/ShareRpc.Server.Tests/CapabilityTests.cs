using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class CapabilityTests : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private Task<DelegateCapabilityResponse> DelegateAsync(LiveRefClaims from, DateTimeOffset? expires = null, byte[]? secret = null, params Right[] rights)
    {
        var req = new DelegateCapabilityRequest { Secret = ByteString.CopyFrom(secret ?? NewSecret()), Note = "test" };
        req.Rights.AddRange(rights);
        if (expires is { } x) req.ExpiresAt = Timestamp.FromDateTimeOffset(x);
        return _f.Engine.DelegateAsync(from, req, Endpoint);
    }

    private Task<RevokeCapabilityResponse> RevokeAsync(LiveRefClaims by, string capabilityId) =>
        _f.Engine.RevokeAsync(by, new RevokeCapabilityRequest { CapabilityId = capabilityId });

    [Fact]
    public async Task CreateShare_is_idempotent_on_key_and_secret_and_refuses_another_secret()
    {
        var (first, secret) = await _f.CreateShareAsync("agent-session-1");
        Assert.True(first.Created);
        Assert.Equal(1UL, first.Epoch);
        var sturdy = SturdyRef.Parse(first.SturdyRef);
        Assert.Equal((Endpoint.Host, Endpoint.Port, first.ShareId), (sturdy.Host, sturdy.Port, sturdy.ShareId));
        Assert.Equal(secret, sturdy.Secret);

        var retry = await _f.CreateShareAsync("agent-session-1", secret);
        Assert.False(retry.Response.Created);
        Assert.Equal((first.ShareId, first.SturdyRef), (retry.Response.ShareId, retry.Response.SturdyRef));

        await Expect.Fails(() => _f.CreateShareAsync("agent-session-1", NewSecret()), ShareRpcStatus.AlreadyExists, Reasons.ShareKeyTaken);
        var other = await _f.CreateShareAsync("agent-session-2", secret);
        Assert.True(other.Response.Created);
        Assert.NotEqual(first.ShareId, other.Response.ShareId);
    }

    [Fact]
    public async Task Concurrent_creates_of_one_key_make_one_share()
    {
        var secret = NewSecret();
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _f.CreateShareAsync("race", secret)));
        Assert.Single(results, r => r.Response.Created);
        Assert.Single(results.Select(r => r.Response.SturdyRef).Distinct());
    }

    [Fact]
    public async Task CreateShare_checks_its_fields_and_the_creator_token()
    {
        await Expect.Fails(() => _f.CreateShareAsync("", null), ShareRpcStatus.InvalidArgument, Reasons.InvalidArgument, "share_key");
        await Expect.Fails(() => _f.CreateShareAsync("k", new byte[31]), ShareRpcStatus.InvalidArgument, Reasons.InvalidArgument, "owner_secret");
        await Expect.Fails(() => _f.CreateShareAsync(new string('k', 257), null), ShareRpcStatus.ResourceExhausted, Reasons.Limit, "share_key");

        await using var guarded = new EngineFixture(o => o.CreatorToken = "let-me-in");
        var req = new CreateShareRequest { ShareKey = "k", OwnerSecret = ByteString.CopyFrom(NewSecret()) };
        await Expect.Fails(() => guarded.Engine.CreateShareAsync(req, null, Endpoint), ShareRpcStatus.Unauthenticated, Reasons.CreatorToken);
        await Expect.Fails(() => guarded.Engine.CreateShareAsync(req, "Bearer wrong", Endpoint), ShareRpcStatus.Unauthenticated, Reasons.CreatorToken);
        Assert.True((await guarded.Engine.CreateShareAsync(req, "Bearer let-me-in", Endpoint)).Created);
    }

    [Fact]
    public async Task Redeem_gives_a_live_ref_with_epoch_cursor_rights_and_one_hour_lifetime()
    {
        var (created, secret) = await _f.CreateShareAsync();
        var owner = await _f.RedeemAsync(created.SturdyRef);
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        var r = await _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        Assert.Equal((created.ShareId, 1UL, 1UL), (r.ShareId, r.Epoch, r.Cursor));
        Assert.Equal([Right.Read, Right.Append, Right.Delegate, Right.Revoke], r.Rights);
        Assert.Equal(_f.Clock.GetUtcNow().AddHours(1).ToUnixTimeSeconds(), r.LiveRefExpiresAt.Seconds);

        // Wrong secret, unknown share, malformed ref.
        var sturdy = SturdyRef.Parse(created.SturdyRef);
        var wrong = new SturdyRef(sturdy.Host, sturdy.Port, false, sturdy.ShareId, sturdy.CapabilityId, NewSecret()).ToString();
        await Expect.Fails(() => _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = wrong }), ShareRpcStatus.PermissionDenied, Reasons.BadSecret);
        var unknownCap = new SturdyRef(sturdy.Host, sturdy.Port, false, sturdy.ShareId, "nope", secret).ToString();
        await Expect.Fails(() => _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = unknownCap }), ShareRpcStatus.PermissionDenied, Reasons.BadSecret);
        var unknownShare = new SturdyRef(sturdy.Host, sturdy.Port, false, "nope", sturdy.CapabilityId, secret).ToString();
        await Expect.Fails(() => _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = unknownShare }), ShareRpcStatus.NotFound, Reasons.ShareNotFound);
        await Expect.Fails(() => _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = "http://x" }), ShareRpcStatus.InvalidArgument, null, "sturdy_ref");

        // The live ref expires after its lifetime.
        _f.Clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        await Expect.Fails(() => Task.FromResult(_f.Engine.Authenticate("Bearer " + r.LiveRef)), ShareRpcStatus.Unauthenticated, Reasons.Expired);
        await Expect.Fails(() => Task.FromResult(_f.Engine.Authenticate(null)), ShareRpcStatus.Unauthenticated, Reasons.MissingToken);
        await Expect.Fails(() => Task.FromResult(_f.Engine.Authenticate("Bearer srl1.x.y")), ShareRpcStatus.Unauthenticated, Reasons.InvalidToken);
    }

    [Fact]
    public async Task Revoke_bumps_the_epoch_and_stale_or_revoked_appends_are_refused()
    {
        var (owner, ownerRef) = await _f.NewShareAsync();
        var child = await DelegateAsync(owner, rights: [Right.Read, Right.Append]);
        var childLive = await _f.RedeemAsync(child.SturdyRef);
        await _f.AppendAsync(childLive, "c", Put(1, "d", "a", "1"));

        var revoke = await RevokeAsync(owner, child.CapabilityId);
        Assert.Equal(2UL, revoke.Epoch);
        Assert.Equal([child.CapabilityId], revoke.RevokedCapabilityIds);

        await Expect.Fails(() => _f.AppendAsync(childLive, "c", Put(2, "d", "b", "1")), ShareRpcStatus.PermissionDenied, Reasons.Revoked);
        await Expect.Fails(() => _f.AppendAsync(owner, "o", Put(1, "d", "b", "1")), ShareRpcStatus.Unauthenticated, Reasons.EpochStale);
        await Expect.Fails(() => _f.RedeemAsync(child.SturdyRef), ShareRpcStatus.PermissionDenied, Reasons.Revoked);

        var (otherShare, _) = await _f.NewShareAsync();
        Assert.Equal(1UL, otherShare.Epoch); // another share keeps its own epoch

        // The unrevoked owner redeems again and goes on; nothing of the refused batches was applied.
        var again = await _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = ownerRef });
        Assert.Equal((2UL, 1UL), (again.Epoch, again.Cursor));
        var ack = await _f.AppendAsync(_f.Engine.Authenticate("Bearer " + again.LiveRef), "o", Put(1, "d", "b", "1"));
        Assert.Equal(2UL, ack.Acks[0].Cursor);
    }

    [Fact]
    public async Task Stale_epoch_is_checked_inside_the_transaction_even_when_queued_before_the_revoke_commits()
    {
        var (owner, ownerRef) = await _f.NewShareAsync();
        var child = await DelegateAsync(owner, rights: [Right.Append]);
        var childLive = await _f.RedeemAsync(child.SturdyRef);

        // Hold the committer (its running group is just the blocker) so the revoke and the appends
        // queue up behind it and land in ONE group transaction, revoke first.
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = _f.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        var commitsBefore = _f.Engine.Committer.Commits;
        var revoke = _f.Engine.RevokeAsync(owner, new RevokeCapabilityRequest { All = true });
        var ownerAppend = _f.AppendAsync(owner, "o", Put(1, "d", "a", "1"));
        var childAppend = _f.AppendAsync(childLive, "c", Put(1, "d", "b", "1"));
        Assert.Equal(3, _f.Engine.Committer.QueuedCount); // all validated and queued before the revoke committed
        gate.SetResult();

        await blocker;
        Assert.Equal(2UL, (await revoke).Epoch);
        await Expect.Fails(() => ownerAppend, ShareRpcStatus.Unauthenticated, Reasons.EpochStale);
        await Expect.Fails(() => childAppend, ShareRpcStatus.PermissionDenied, Reasons.Revoked);
        Assert.Equal(commitsBefore + 2, _f.Engine.Committer.Commits); // the blocker's group, then one for all three
        var snap = await _f.Engine.GetSnapshotAsync(await _f.RedeemAsync(ownerRef), new GetSnapshotRequest());
        Assert.Equal(0UL, snap.Cursor);
        Assert.Empty(snap.Documents);
    }

    [Fact]
    public async Task Delegates_hold_at_most_their_parents_rights()
    {
        var (owner, _) = await _f.NewShareAsync();
        var reader = await DelegateAsync(owner, rights: [Right.Read]);
        var readerLive = await _f.RedeemAsync(reader.SturdyRef);
        Assert.Equal(Rights.Read, readerLive.Rights);
        await Expect.Fails(() => _f.AppendAsync(readerLive, "r", Put(1, "d", "a", "1")), ShareRpcStatus.PermissionDenied, Reasons.Rights);
        await Expect.Fails(() => DelegateAsync(readerLive, rights: [Right.Read]), ShareRpcStatus.PermissionDenied, Reasons.Rights);
        await Expect.Fails(() => RevokeAsync(readerLive, reader.CapabilityId), ShareRpcStatus.PermissionDenied, Reasons.Rights);

        var mid = await DelegateAsync(owner, rights: [Right.Read, Right.Delegate]);
        var midLive = await _f.RedeemAsync(mid.SturdyRef);
        await Expect.Fails(() => DelegateAsync(midLive, rights: [Right.Read, Right.Append]), ShareRpcStatus.PermissionDenied, Reasons.Rights);
        var leaf = await DelegateAsync(midLive, rights: [Right.Read]);
        Assert.Equal(Rights.Read, (await _f.RedeemAsync(leaf.SturdyRef)).Rights);

        await Expect.Fails(() => DelegateAsync(owner), ShareRpcStatus.InvalidArgument, null, "rights");
        await Expect.Fails(() => DelegateAsync(owner, rights: [Right.Unspecified]), ShareRpcStatus.InvalidArgument, null, "rights");
        await Expect.Fails(() => DelegateAsync(owner, secret: new byte[8], rights: [Right.Read]), ShareRpcStatus.InvalidArgument, null, "secret");
        await Expect.Fails(() => DelegateAsync(owner, expires: _f.Clock.GetUtcNow().AddSeconds(-1), rights: [Right.Read]), ShareRpcStatus.InvalidArgument, null, "expires_at");
    }

    [Fact]
    public async Task Delegate_is_idempotent_on_its_secret()
    {
        var (owner, _) = await _f.NewShareAsync();
        var secret = NewSecret();
        var a = await DelegateAsync(owner, secret: secret, rights: [Right.Read]);
        var b = await DelegateAsync(owner, secret: secret, rights: [Right.Read]);
        Assert.Equal((a.CapabilityId, a.SturdyRef), (b.CapabilityId, b.SturdyRef));
        await Expect.Fails(() => DelegateAsync(owner, secret: secret, rights: [Right.Read, Right.Append]), ShareRpcStatus.AlreadyExists, Reasons.SecretTaken);
        await using var r = await _f.Engine.Store.BeginReadAsync();
        var share = await r.GetShareAsync(owner.ShareId);
        Assert.Equal(2, (await r.GetCapabilitiesAsync(share!.RowId)).Count);
    }

    [Fact]
    public async Task Revoking_a_parent_revokes_all_its_descendants_and_nothing_else()
    {
        var (owner, _) = await _f.NewShareAsync();
        var a = await DelegateAsync(owner, rights: [Right.Read, Right.Delegate, Right.Revoke]);
        var aLive = await _f.RedeemAsync(a.SturdyRef);
        var b = await DelegateAsync(aLive, rights: [Right.Read, Right.Delegate]);
        var c = await DelegateAsync(await _f.RedeemAsync(b.SturdyRef), rights: [Right.Read]);
        var sibling = await DelegateAsync(owner, rights: [Right.Read]);

        // A child cannot revoke its sibling or its parent.
        await Expect.Fails(() => RevokeAsync(aLive, sibling.CapabilityId), ShareRpcStatus.PermissionDenied, Reasons.Rights);
        await Expect.Fails(() => RevokeAsync(owner, "nonexistent"), ShareRpcStatus.NotFound, Reasons.CapabilityNotFound);

        var revoked = await RevokeAsync(owner, a.CapabilityId);
        Assert.Equal(new[] { a.CapabilityId, b.CapabilityId, c.CapabilityId }.Order(), revoked.RevokedCapabilityIds.Order());
        foreach (var gone in new[] { a, b, c })
            await Expect.Fails(() => _f.RedeemAsync(gone.SturdyRef), ShareRpcStatus.PermissionDenied, Reasons.Revoked);
        Assert.Equal(Rights.Read, (await _f.RedeemAsync(sibling.SturdyRef)).Rights);
    }

    [Fact]
    public async Task Revoke_all_revokes_everything_the_caller_delegated_and_bumps_the_epoch()
    {
        var (created, _) = await _f.CreateShareAsync();
        var owner = await _f.RedeemAsync(created.SturdyRef);
        var x = await DelegateAsync(owner, rights: [Right.Read, Right.Delegate]);
        var y = await DelegateAsync(await _f.RedeemAsync(x.SturdyRef), rights: [Right.Read]);
        var r1 = await _f.Engine.RevokeAsync(owner, new RevokeCapabilityRequest { All = true });
        Assert.Equal(2UL, r1.Epoch);
        Assert.Equal(new[] { x.CapabilityId, y.CapabilityId }.Order(), r1.RevokedCapabilityIds.Order());
        var owner2 = await _f.RedeemAsync(created.SturdyRef);
        Assert.Equal(2UL, owner2.Epoch);
        // Every revoke bumps the epoch, even one with nothing left to revoke.
        var r2 = await _f.Engine.RevokeAsync(owner2, new RevokeCapabilityRequest { All = true });
        Assert.Equal(3UL, r2.Epoch);
        Assert.Empty(r2.RevokedCapabilityIds);
        await Expect.Fails(() => _f.Engine.RevokeAsync(owner2, new RevokeCapabilityRequest()), ShareRpcStatus.InvalidArgument, null, "target");
    }

    [Fact]
    public async Task An_expired_capability_is_refused()
    {
        var (owner, _) = await _f.NewShareAsync();
        var temp = await DelegateAsync(owner, expires: _f.Clock.GetUtcNow().AddMinutes(10), rights: [Right.Read, Right.Append]);
        var redeemed = await _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = temp.SturdyRef });
        // The live ref never outlives its capability.
        Assert.Equal(_f.Clock.GetUtcNow().AddMinutes(10).ToUnixTimeSeconds(), redeemed.LiveRefExpiresAt.Seconds);
        var live = _f.Engine.Authenticate("Bearer " + redeemed.LiveRef);
        await _f.AppendAsync(live, "t", Put(1, "d", "a", "1"));

        _f.Clock.Advance(TimeSpan.FromMinutes(11));
        await Expect.Fails(() => _f.RedeemAsync(temp.SturdyRef), ShareRpcStatus.PermissionDenied, Reasons.CapabilityExpired);
        await Expect.Fails(() => Task.FromResult(_f.Engine.Authenticate("Bearer " + redeemed.LiveRef)), ShareRpcStatus.Unauthenticated, Reasons.Expired);
        // Even with claims that passed authentication earlier, the transaction refuses.
        await Expect.Fails(() => _f.AppendAsync(live, "t", Put(2, "d", "b", "1")), ShareRpcStatus.PermissionDenied, Reasons.CapabilityExpired);
    }

    [Fact]
    public async Task A_delegate_never_outlives_its_parent()
    {
        var (owner, _) = await _f.NewShareAsync();
        var parent = await DelegateAsync(owner, expires: _f.Clock.GetUtcNow().AddMinutes(5), rights: [Right.Read, Right.Delegate]);
        var child = await DelegateAsync(await _f.RedeemAsync(parent.SturdyRef), rights: [Right.Read]); // asks for no expiry
        _f.Clock.Advance(TimeSpan.FromMinutes(6));
        await Expect.Fails(() => _f.RedeemAsync(child.SturdyRef), ShareRpcStatus.PermissionDenied, Reasons.CapabilityExpired);
    }

    [Fact]
    public async Task The_owner_can_revoke_itself_which_ends_the_share_for_everyone()
    {
        var (owner, ownerRef) = await _f.NewShareAsync();
        var child = await DelegateAsync(owner, rights: [Right.Read]);
        var r = await RevokeAsync(owner, owner.CapabilityId);
        Assert.Equal(new[] { owner.CapabilityId, child.CapabilityId }.Order(), r.RevokedCapabilityIds.Order());
        await Expect.Fails(() => _f.RedeemAsync(ownerRef), ShareRpcStatus.PermissionDenied, Reasons.Revoked);
        await Expect.Fails(() => _f.RedeemAsync(child.SturdyRef), ShareRpcStatus.PermissionDenied, Reasons.Revoked);
        await Expect.Fails(() => RevokeAsync(owner, owner.CapabilityId), ShareRpcStatus.PermissionDenied, Reasons.Revoked);
    }
}
