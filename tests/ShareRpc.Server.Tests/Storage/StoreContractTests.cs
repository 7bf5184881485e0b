using System.Security.Cryptography;
using Google.Protobuf;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage;
using Sharerpc.V1;
using Xunit.Abstractions;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>
/// The store contract: the same tests, through <see cref="ShareEngine"/> (and, for transactions,
/// the store itself), against every <see cref="IShareStore"/>. A subclass opens its store on one
/// fresh database per test.
/// </summary>
public abstract partial class StoreContractTests : IAsyncLifetime
{
    protected StoreContractTests(ITestOutputHelper output) => Output = output;

    protected ITestOutputHelper Output { get; }
    private protected EngineFixture F { get; private set; } = null!;

    /// <summary>Makes the fresh database this test uses.</summary>
    protected virtual Task PrepareAsync() => Task.CompletedTask;

    /// <summary>Opens the store on this test's database (each call a new store object on the same data).</summary>
    private protected abstract Task<IShareStore> OpenStoreAsync();

    /// <summary>Writes <paramref name="version"/> as the schema version (by hand, as a newer server would).</summary>
    protected abstract Task SetSchemaVersionAsync(int version);

    /// <summary>Reads the stored schema version.</summary>
    protected abstract Task<int> GetSchemaVersionAsync();

    protected abstract int CurrentSchemaVersion { get; }

    protected virtual Task CleanupAsync() => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        await PrepareAsync();
        F = await EngineFixture.OpenAsync(OpenStoreAsync);
    }

    public async Task DisposeAsync()
    {
        await F.DisposeAsync();
        await CleanupAsync();
    }

    private static byte[] SecretOf(string sturdyRef) => SturdyRef.Parse(sturdyRef).Secret;

    // ------------------------------------------------------------------ shares and capabilities

    [Fact]
    public async Task Create_and_redeem_give_the_owner_every_right_at_epoch_1_cursor_0()
    {
        var (created, _) = await F.CreateShareAsync("session-1");
        Assert.True(created.Created);
        Assert.Equal(1UL, created.Epoch);
        var redeemed = await F.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        Assert.Equal((created.ShareId, 1UL, 0UL), (redeemed.ShareId, redeemed.Epoch, redeemed.Cursor));
        Assert.Equal([Right.Read, Right.Append, Right.Delegate, Right.Revoke], redeemed.Rights.OrderBy(r => r));
        var parsed = SturdyRef.Parse(created.SturdyRef);
        var wrong = new SturdyRef(parsed.Host, parsed.Port, parsed.Tls, parsed.ShareId, parsed.CapabilityId, RandomNumberGenerator.GetBytes(32));
        await Expect.Fails(() => F.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = wrong.ToString() }), ShareRpcStatus.PermissionDenied, "bad-secret");
    }

    [Fact]
    public async Task CreateShare_is_idempotent_on_key_and_secret_and_refuses_another_secret()
    {
        var (first, secret) = await F.CreateShareAsync("k");
        var again = await F.CreateShareAsync("k", secret);
        Assert.Equal((false, first.ShareId, first.SturdyRef), (again.Response.Created, again.Response.ShareId, again.Response.SturdyRef));
        await Expect.Fails(() => F.CreateShareAsync("k"), ShareRpcStatus.AlreadyExists, "share-key-taken");
        var other = await F.CreateShareAsync("k2", secret);
        Assert.True(other.Response.Created);
        Assert.NotEqual(first.ShareId, other.Response.ShareId);
    }

    [Fact]
    public async Task Delegation_is_idempotent_on_its_secret_and_never_widens_rights()
    {
        var (owner, _) = await F.NewShareAsync();
        var secret = ByteString.CopyFrom(NewSecret());
        var req = new DelegateCapabilityRequest { Secret = secret, Note = "reader" };
        req.Rights.Add(Right.Read);
        var a = await F.Engine.DelegateAsync(owner, req, Endpoint);
        var b = await F.Engine.DelegateAsync(owner, req, Endpoint);
        Assert.Equal(a.CapabilityId, b.CapabilityId);
        var reader = await F.RedeemAsync(a.SturdyRef);
        Assert.Equal(Rights.Read, reader.Rights);
        var widen = new DelegateCapabilityRequest { Secret = ByteString.CopyFrom(NewSecret()) };
        widen.Rights.Add(Right.Append);
        await Expect.Fails(() => F.Engine.DelegateAsync(reader, widen, Endpoint), ShareRpcStatus.PermissionDenied, "rights");
        await Expect.Fails(() => F.AppendAsync(reader, "p", Put(1, "d", "k", "v")), ShareRpcStatus.PermissionDenied, "rights");
    }

    [Fact]
    public async Task Revoke_bumps_the_epoch_refuses_the_revoked_and_stale_live_refs_and_redeem_recovers()
    {
        var (owner, ownerRef) = await F.NewShareAsync();
        var req = new DelegateCapabilityRequest { Secret = ByteString.CopyFrom(NewSecret()) };
        req.Rights.Add(Right.Read);
        req.Rights.Add(Right.Append);
        var child = await F.RedeemAsync((await F.Engine.DelegateAsync(owner, req, Endpoint)).SturdyRef);
        Assert.Equal(OpStatus.Applied, (await F.AppendAsync(child, "c", Put(1, "d", "k", "v"))).Acks[0].Status);

        var revoked = await F.Engine.RevokeAsync(owner, new RevokeCapabilityRequest { CapabilityId = child.CapabilityId });
        Assert.Equal(2UL, revoked.Epoch);
        Assert.Equal([child.CapabilityId], revoked.RevokedCapabilityIds);

        await Expect.Fails(() => F.AppendAsync(child, "c", Put(2, "d", "k", "w")), ShareRpcStatus.PermissionDenied, "revoked");
        await Expect.Fails(() => F.AppendAsync(owner, "o", Put(1, "d", "k", "w")), ShareRpcStatus.Unauthenticated, "epoch-stale");
        var fresh = await F.RedeemAsync(ownerRef);
        Assert.Equal(2UL, fresh.Epoch);
        var ack = await F.AppendAsync(fresh, "o", Put(1, "d", "k", "w"));
        Assert.Equal((OpStatus.Applied, 2UL, 2UL), (ack.Acks[0].Status, ack.Acks[0].Cursor, ack.Acks[0].Version));
        // Revoking again still bumps the epoch, and lists nothing newly revoked.
        var again = await F.Engine.RevokeAsync(fresh, new RevokeCapabilityRequest { All = true });
        Assert.Equal(3UL, again.Epoch);
        Assert.Empty(again.RevokedCapabilityIds);
    }

    // ------------------------------------------------------------------ AppendOps semantics

    [Fact]
    public async Task Appends_apply_in_order_with_dense_cursors_and_per_document_versions()
    {
        var (owner, _) = await F.NewShareAsync();
        var r = await F.AppendAsync(owner, "p", Put(1, "d", "x", "1"), Put(2, "d", "y", "1"), Put(3, "d", "x", "2"), AppendOp(4, "m", "hello"));
        Assert.Equal(4UL, r.Cursor);
        Assert.All(r.Acks, a => Assert.Equal(OpStatus.Applied, a.Status));
        Assert.Equal([1UL, 2UL, 3UL, 4UL], r.Acks.Select(a => a.Cursor));
        Assert.Equal([1UL, 1UL, 2UL, 1UL], r.Acks.Select(a => a.Version));
        var r2 = await F.AppendAsync(owner, "q", AppendOp(1, "m", "again"));
        Assert.Equal((5UL, 5UL), (r2.Cursor, r2.Acks[0].Cursor));
        var snap = await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { Collection = "m" });
        Assert.Equal(["4", "5"], snap.Documents.Select(d => d.Key));
        Assert.Equal(5UL, snap.Cursor);
    }

    [Fact]
    public async Task A_resent_batch_is_all_duplicate_with_its_original_cursors_and_versions()
    {
        var (owner, _) = await F.NewShareAsync();
        var batch = Batch("p", Put(1, "d", "a", "1"), Put(2, "d", "a", "2"), AppendOp(3, "m", "x"));
        var first = await F.Engine.AppendAsync(owner, batch);
        await F.AppendAsync(owner, "other", Put(1, "d", "a", "3"));
        var resent = await F.Engine.AppendAsync(owner, batch);
        Assert.All(resent.Acks, a => Assert.Equal(OpStatus.Duplicate, a.Status));
        Assert.Equal(first.Acks.Select(a => (a.Cursor, a.Version)), resent.Acks.Select(a => (a.Cursor, a.Version)));
        Assert.Equal(4UL, resent.Cursor); // nothing new applied
        var snap = await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { Collection = "d" });
        Assert.Equal(("3", 3UL), (snap.Documents.Single().Value.ToStringUtf8(), snap.Documents.Single().Version));
    }

    [Fact]
    public async Task A_rejection_is_remembered_forever_even_after_its_cause_is_gone()
    {
        var (owner, _) = await F.NewShareAsync();
        var dep = NewOpId();
        var waiting = Put(1, "d", "k", "v", dependsOn: dep);
        var r1 = await F.AppendAsync(owner, "p", waiting);
        Assert.Equal((OpStatus.Rejected, RejectReason.DependencyMissing), (r1.Acks[0].Status, r1.Acks[0].RejectReason));
        Assert.Equal(OpStatus.Applied, (await F.AppendAsync(owner, "q", Put(1, "d", "dep", "v", opId: dep))).Acks[0].Status);
        var r2 = await F.AppendAsync(owner, "p", waiting); // a resend after a lost ack
        Assert.Equal((OpStatus.Rejected, RejectReason.DependencyMissing, r1.Acks[0].Detail), (r2.Acks[0].Status, r2.Acks[0].RejectReason, r2.Acks[0].Detail));
        await F.ReopenAsync();
        var r3 = await F.Engine.AppendAsync(owner, Batch("p", waiting));
        Assert.Equal(OpStatus.Rejected, r3.Acks[0].Status);
        Assert.Equal(1UL, r3.Cursor);
    }

    [Fact]
    public async Task Expected_versions_are_checked_and_a_conflict_reports_the_current_version()
    {
        var (owner, _) = await F.NewShareAsync();
        var r = await F.AppendAsync(owner, "p",
            Put(1, "d", "k", "a", expectedVersion: 0),
            Put(2, "d", "k", "b", expectedVersion: 0),
            Put(3, "d", "k", "c", expectedVersion: 1),
            Delete(4, "d", "k", expectedVersion: 7));
        Assert.Equal([OpStatus.Applied, OpStatus.Rejected, OpStatus.Applied, OpStatus.Rejected], r.Acks.Select(a => a.Status));
        Assert.Equal((RejectReason.VersionConflict, 1UL), (r.Acks[1].RejectReason, r.Acks[1].Version));
        Assert.Equal((RejectReason.VersionConflict, 2UL), (r.Acks[3].RejectReason, r.Acks[3].Version));
        Assert.Equal(2UL, r.Cursor); // rejected ops take no cursor
        var doc = (await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest())).Documents.Single();
        Assert.Equal(("c", 2UL, 2UL), (doc.Value.ToStringUtf8(), doc.Version, doc.Cursor));
    }

    [Fact]
    public async Task Depends_on_counts_earlier_ops_of_the_batch_and_earlier_batches_but_not_later_ones()
    {
        var (owner, _) = await F.NewShareAsync();
        var a = NewOpId();
        var later = NewOpId();
        var r = await F.AppendAsync(owner, "p",
            Put(1, "d", "a", "1", opId: a),
            Put(2, "d", "b", "1", dependsOn: a),
            Put(3, "d", "c", "1", dependsOn: later),
            Put(4, "d", "later", "1", opId: later));
        Assert.Equal([OpStatus.Applied, OpStatus.Applied, OpStatus.Rejected, OpStatus.Applied], r.Acks.Select(x => x.Status));
        Assert.Equal(RejectReason.DependencyMissing, r.Acks[2].RejectReason);
        var r2 = await F.AppendAsync(owner, "p", Put(5, "d", "e", "1", null, null, a, later));
        Assert.Equal(OpStatus.Applied, r2.Acks[0].Status);
        // A rejected op never satisfies a dependency.
        var r3 = await F.AppendAsync(owner, "p", Put(6, "d", "f", "1", dependsOn: r.Acks[2].OpId));
        Assert.Equal(RejectReason.DependencyMissing, r3.Acks[0].RejectReason);
    }

    [Fact]
    public async Task A_producer_gap_refuses_the_whole_batch_and_a_reused_seq_is_rejected()
    {
        var (owner, _) = await F.NewShareAsync();
        await F.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        var gap = await F.AppendAsync(owner, "p", Put(3, "d", "b", "1"), Put(4, "d", "c", "1"));
        Assert.Equal((BatchStatus.OutOfOrder, 2UL, 1UL), (gap.BatchStatus, gap.ExpectedSeq, gap.Cursor));
        Assert.Empty(gap.Acks);
        var reused = await F.AppendAsync(owner, "p", Put(1, "d", "z", "1"), Put(2, "d", "b", "1"));
        Assert.Equal((OpStatus.Rejected, RejectReason.InvalidOp), (reused.Acks[0].Status, reused.Acks[0].RejectReason));
        Assert.Equal((OpStatus.Applied, 2UL), (reused.Acks[1].Status, reused.Acks[1].Cursor));
        // Producers are independent.
        Assert.Equal(OpStatus.Applied, (await F.AppendAsync(owner, "q", Put(1, "d", "q", "1"))).Acks[0].Status);
        var next = await F.AppendAsync(owner, "p", Put(3, "d", "c", "1"));
        Assert.Equal(4UL, next.Acks[0].Cursor);
    }

    [Fact]
    public async Task A_delete_leaves_a_tombstone_so_versions_keep_counting()
    {
        var (owner, _) = await F.NewShareAsync();
        var r = await F.AppendAsync(owner, "p", Put(1, "d", "k", "v"), Delete(2, "d", "k"), Delete(3, "d", "never-existed"));
        Assert.Equal([1UL, 2UL, 1UL], r.Acks.Select(a => a.Version));
        Assert.Empty((await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest())).Documents);
        var back = await F.AppendAsync(owner, "p", Put(4, "d", "k", "again", expectedVersion: 0));
        Assert.Equal((OpStatus.Applied, 3UL), (back.Acks[0].Status, back.Acks[0].Version));
        var doc = (await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest())).Documents.Single();
        Assert.Equal(("k", "again", 3UL, 4UL), (doc.Key, doc.Value.ToStringUtf8(), doc.Version, doc.Cursor));
    }

    [Fact]
    public async Task An_append_landing_on_a_numeric_key_that_a_put_made_bumps_that_documents_version()
    {
        var (owner, _) = await F.NewShareAsync();
        var r = await F.AppendAsync(owner, "p", Put(1, "m", "2", "put"), AppendOp(2, "m", "appended"), Put(3, "m", "2", "put-again", expectedVersion: 2));
        Assert.Equal((2UL, 2UL), (r.Acks[1].Cursor, r.Acks[1].Version));
        Assert.Equal((OpStatus.Applied, 3UL), (r.Acks[2].Status, r.Acks[2].Version));
        var doc = (await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { Collection = "m" })).Documents.Single();
        Assert.Equal(("2", "put-again", 3UL), (doc.Key, doc.Value.ToStringUtf8(), doc.Version));
    }

    // ------------------------------------------------------------------ reads

    [Fact]
    public async Task Snapshots_page_in_byte_order_of_collection_and_key()
    {
        var (owner, _) = await F.NewShareAsync();
        string[] keys = ["b", "a", "B", "é", "a0", "_"];
        var ops = new List<Op>();
        ulong seq = 0;
        foreach (var k in keys) ops.Add(Put(++seq, "c1", k, "v" + k));
        ops.Add(Put(++seq, "c0", "z", "vz"));
        ops.Add(Delete(++seq, "c1", "_"));
        await F.AppendAsync(owner, "p", ops.ToArray());

        var all = new List<(string, string)>();
        var token = "";
        var pages = 0;
        do
        {
            var page = await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { PageSize = 2, PageToken = token });
            Assert.Equal(8UL, page.Cursor);
            all.AddRange(page.Documents.Select(d => (d.Collection, d.Key)));
            token = page.NextPageToken;
            pages++;
        } while (token.Length > 0);
        Assert.Equal([("c0", "z"), ("c1", "B"), ("c1", "a"), ("c1", "a0"), ("c1", "b"), ("c1", "é")], all);
        Assert.Equal(3, pages);
        var only = await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { Collection = "c1", PageSize = 10 });
        Assert.Equal(["B", "a", "a0", "b", "é"], only.Documents.Select(d => d.Key));
        Assert.Equal("vé", only.Documents[^1].Value.ToStringUtf8());
    }

    [Fact]
    public async Task Subscribe_replays_the_log_from_a_cursor_and_after_a_snapshot_continues_live()
    {
        var (owner, _) = await F.NewShareAsync();
        var dep = NewOpId();
        await F.AppendAsync(owner, "p", Put(1, "d", "a", "1", opId: dep), Put(2, "d", "b", "2", 0, null, dep), Delete(3, "d", "a"), AppendOp(4, "m", "x"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var fromTwo = new List<SubscribeResponse>();
        await foreach (var e in F.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 2 }, cts.Token))
        {
            fromTwo.Add(e);
            if (fromTwo.Count == 3) break;
        }
        Assert.Equal([2UL, 3UL, 4UL], fromTwo.Select(e => e.Op.Cursor));
        var put = fromTwo[0].Op;
        Assert.Equal(("p", 2UL, "b", "2", true, 0UL, dep), (put.ProducerId, put.Op.Seq, put.Op.Put.Key, put.Op.Put.Value.ToStringUtf8(), put.Op.Put.HasExpectedVersion, put.Op.Put.ExpectedVersion, put.Op.DependsOn.Single()));
        Assert.Equal(Op.KindOneofCase.Delete, fromTwo[1].Op.Op.KindCase);
        Assert.Equal("x", fromTwo[2].Op.Op.Append.Value.ToStringUtf8());

        await using var live = F.Engine.SubscribeAsync(owner, new SubscribeRequest { IncludeSnapshot = true }, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await live.MoveNextAsync());
        Assert.True(live.Current.Snapshot.LastChunk);
        Assert.Equal(4UL, live.Current.Snapshot.Cursor);
        Assert.Equal([("d", "b"), ("m", "4")], live.Current.Snapshot.Documents.Select(d => (d.Collection, d.Key)));
        var next = live.MoveNextAsync().AsTask();
        await F.AppendAsync(owner, "p", Put(5, "d", "c", "live"));
        Assert.True(await next);
        Assert.Equal((5UL, "live"), (live.Current.Op.Cursor, live.Current.Op.Op.Put.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task Values_round_trip_byte_for_byte()
    {
        var (owner, _) = await F.NewShareAsync();
        var big = RandomNumberGenerator.GetBytes(300 * 1024);
        var withNul = new byte[] { 0, 1, 0, 255, 0 };
        var op1 = new Op { OpId = NewOpId(), Seq = 1, Put = new Put { Collection = "bin", Key = "big", Value = ByteString.CopyFrom(big), ContentType = "application/octet-stream" } };
        var op2 = new Op { OpId = NewOpId(), Seq = 2, Put = new Put { Collection = "bin", Key = "nul", Value = ByteString.CopyFrom(withNul) } };
        var op3 = new Op { OpId = NewOpId(), Seq = 3, Put = new Put { Collection = "bin", Key = "empty", Value = ByteString.Empty } };
        await F.AppendAsync(owner, "p", op1, op2, op3);
        var snap = await F.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { Collection = "bin" });
        var byKey = snap.Documents.ToDictionary(d => d.Key);
        Assert.Equal(big, byKey["big"].Value.ToByteArray());
        Assert.Equal("application/octet-stream", byKey["big"].ContentType);
        Assert.Equal(withNul, byKey["nul"].Value.ToByteArray());
        Assert.Empty(byKey["empty"].Value.ToByteArray());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var e in F.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 1 }, cts.Token))
        {
            Assert.Equal(big, e.Op.Op.Put.Value.ToByteArray());
            break;
        }
    }
}
