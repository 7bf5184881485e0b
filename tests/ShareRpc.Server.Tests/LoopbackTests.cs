using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Data.Sqlite;
using ShareRpc.Server.Hosting;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>A real server (Kestrel, h2c on 127.0.0.1, port 0) and a GrpcChannel to it.</summary>
public sealed class LoopbackServer : IAsyncDisposable
{
    private readonly ShareRpcServerHost _host;
    private readonly string _dir;

    private LoopbackServer(ShareRpcServerHost host, string dir)
    {
        _host = host;
        _dir = dir;
        Address = new Uri(host.Address);
        Channel = GrpcChannel.ForAddress(Address);
    }

    public Uri Address { get; }
    public GrpcChannel Channel { get; }
    internal ShareEngine Engine => _host.Engine;

    /// <summary>Graceful stop (what SIGTERM / Ctrl-C does).</summary>
    public Task StopAsync() => _host.StopAsync();

    public static async Task<LoopbackServer> StartAsync(Action<ShareRpcServerOptions>? configure = null)
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-loopback-" + Guid.NewGuid().ToString("N"));
        var host = await ShareRpcServerHost.StartAsync(o =>
        {
            o.DataDirectory = dir;
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            configure?.Invoke(o);
        });
        return new LoopbackServer(host, dir);
    }

    public static CallOptions Bearer(string token) => new(new Metadata { { "authorization", "Bearer " + token } });

    public async Task<(string SturdyRef, RedeemShareResponse Live)> NewShareAsync()
    {
        var created = await Stub(Channel).CreateShareAsync(new CreateShareRequest { ShareKey = Guid.NewGuid().ToString(), OwnerSecret = ByteString.CopyFrom(NewSecret()) });
        var live = await Stub(Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        return (created.SturdyRef, live);
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await _host.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}

public class LoopbackTests : IAsyncLifetime
{
    private LoopbackServer _s = null!;

    public async Task InitializeAsync() => _s = await LoopbackServer.StartAsync();

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static async Task<RpcException> FailsWith(Func<Task> call, StatusCode code, string reason)
    {
        var e = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(code, e.StatusCode);
        Assert.Equal(reason, e.Trailers.GetValue(Reasons.TrailerName));
        return e;
    }

    [Fact]
    public async Task Create_redeem_and_pipelined_appends_over_http2()
    {
        var created = await Stub(_s.Channel).CreateShareAsync(new CreateShareRequest { ShareKey = "k", OwnerSecret = ByteString.CopyFrom(NewSecret()) });
        var sturdy = SturdyRef.Parse(created.SturdyRef);
        Assert.Equal((_s.Address.Host, _s.Address.Port, false), (sturdy.Host, sturdy.Port, sturdy.Tls));
        var live = await Stub(_s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });

        using var call = Stub(_s.Channel).AppendOps(LoopbackServer.Bearer(live.LiveRef));
        var batches = Enumerable.Range(0, 20).Select(i => Batch("p", Put((ulong)i * 2 + 1, "d", "k" + i, "v"), AppendOp((ulong)i * 2 + 2, "m", "x" + i))).ToList();
        foreach (var b in batches) await call.RequestStream.WriteAsync(b); // without waiting for acks
        await call.RequestStream.CompleteAsync();
        var acks = new List<AppendOpsResponse>();
        while (await call.ResponseStream.MoveNext()) acks.Add(call.ResponseStream.Current);
        Assert.Equal(batches.Select(b => b.BatchId), acks.Select(a => a.BatchId)); // in order
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (ulong)i), acks.SelectMany(a => a.Acks).Select(a => a.Cursor));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);

        var snap = await Stub(_s.Channel).GetSnapshotAsync(new GetSnapshotRequest { Collection = "m", PageSize = 100 }, LoopbackServer.Bearer(live.LiveRef));
        Assert.Equal(40UL, snap.Cursor);
        Assert.Equal(20, snap.Documents.Count);
    }

    [Fact]
    public async Task Lost_ack_then_resend_on_a_new_stream_is_duplicate_with_the_original_cursor()
    {
        var (_, live) = await _s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        using var sub = Stub(_s.Channel).Subscribe(new SubscribeRequest(), auth);
        var batch = Batch("p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"));

        var first = Stub(_s.Channel).AppendOps(auth);
        await first.RequestStream.WriteAsync(batch);
        // Wait until it is committed (seen by the subscriber), then drop the stream without reading the ack.
        var seen = new List<ulong>();
        while (seen.Count < 2 && await sub.ResponseStream.MoveNext())
            if (sub.ResponseStream.Current.EventCase == SubscribeResponse.EventOneofCase.Op) seen.Add(sub.ResponseStream.Current.Op.Cursor);
        first.Dispose();

        using var second = Stub(_s.Channel).AppendOps(auth);
        await second.RequestStream.WriteAsync(batch);
        Assert.True(await second.ResponseStream.MoveNext());
        var ack = second.ResponseStream.Current;
        Assert.All(ack.Acks, a => Assert.Equal(OpStatus.Duplicate, a.Status));
        Assert.Equal(seen, ack.Acks.Select(a => a.Cursor));
        await second.RequestStream.CompleteAsync();
        Assert.False(await second.ResponseStream.MoveNext());

        var snap = await Stub(_s.Channel).GetSnapshotAsync(new GetSnapshotRequest(), auth);
        Assert.Equal(2UL, snap.Cursor);
    }

    [Fact]
    public async Task Errors_carry_status_and_reason_and_the_server_keeps_serving()
    {
        var (_, live) = await _s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);

        await FailsWith(async () => await Stub(_s.Channel).GetSnapshotAsync(new GetSnapshotRequest()), StatusCode.Unauthenticated, Reasons.MissingToken);
        await FailsWith(async () => await Stub(_s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = "nope" }), StatusCode.InvalidArgument, Reasons.InvalidArgument);

        using (var bad = Stub(_s.Channel).AppendOps(auth))
        {
            await bad.RequestStream.WriteAsync(Batch("p", Put(1, "d", "ok", "1")));
            var malformed = Batch("p", Put(2, "", "k", "1"));
            await bad.RequestStream.WriteAsync(malformed);
            Assert.True(await bad.ResponseStream.MoveNext()); // the good batch is acked first
            Assert.Equal(1UL, bad.ResponseStream.Current.Cursor);
            var e = await FailsWith(() => bad.ResponseStream.MoveNext(), StatusCode.InvalidArgument, Reasons.InvalidArgument);
            Assert.Equal("ops[0].put.collection", e.Trailers.GetValue(Reasons.FieldTrailerName));
            Assert.Contains("ops[0].put.collection", e.Status.Detail);
        }

        var child = await Stub(_s.Channel).DelegateCapabilityAsync(new DelegateCapabilityRequest { Rights = { Right.Read }, Secret = ByteString.CopyFrom(NewSecret()) }, auth);
        var childLive = await Stub(_s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = child.SturdyRef });
        using (var ro = Stub(_s.Channel).AppendOps(LoopbackServer.Bearer(childLive.LiveRef)))
        {
            await ro.RequestStream.WriteAsync(Batch("c", Put(1, "d", "x", "1")));
            await FailsWith(() => ro.ResponseStream.MoveNext(), StatusCode.PermissionDenied, Reasons.Rights);
        }

        // Still serving.
        using var good = Stub(_s.Channel).AppendOps(auth);
        await good.RequestStream.WriteAsync(Batch("p", Put(2, "d", "ok2", "1")));
        Assert.True(await good.ResponseStream.MoveNext());
        Assert.Equal(2UL, good.ResponseStream.Current.Acks[0].Cursor);
    }

    [Fact]
    public async Task Revoke_ends_idle_append_streams_revoked_with_permission_denied_others_epoch_stale()
    {
        var (ownerRef, owner) = await _s.NewShareAsync();
        var child = await Stub(_s.Channel).DelegateCapabilityAsync(new DelegateCapabilityRequest { Rights = { Right.Append }, Secret = ByteString.CopyFrom(NewSecret()) }, LoopbackServer.Bearer(owner.LiveRef));
        var childLive = await Stub(_s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = child.SturdyRef });

        using var childStream = Stub(_s.Channel).AppendOps(LoopbackServer.Bearer(childLive.LiveRef));
        using var ownerStream = Stub(_s.Channel).AppendOps(LoopbackServer.Bearer(owner.LiveRef));
        await childStream.RequestStream.WriteAsync(Batch("c", Put(1, "d", "c", "1")));
        await ownerStream.RequestStream.WriteAsync(Batch("o", Put(1, "d", "o", "1")));
        Assert.True(await childStream.ResponseStream.MoveNext());
        Assert.True(await ownerStream.ResponseStream.MoveNext());

        var revoked = await Stub(_s.Channel).RevokeCapabilityAsync(new RevokeCapabilityRequest { CapabilityId = child.CapabilityId }, LoopbackServer.Bearer(owner.LiveRef));
        Assert.Equal(2UL, revoked.Epoch);

        // Both streams are idle, and both end.
        await FailsWith(() => childStream.ResponseStream.MoveNext(), StatusCode.PermissionDenied, Reasons.Revoked);
        await FailsWith(() => ownerStream.ResponseStream.MoveNext(), StatusCode.Unauthenticated, Reasons.EpochStale);

        // The owner redeems again and goes on.
        var again = await Stub(_s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = ownerRef });
        Assert.Equal((2UL, 2UL), (again.Epoch, again.Cursor));
        using var resumed = Stub(_s.Channel).AppendOps(LoopbackServer.Bearer(again.LiveRef));
        await resumed.RequestStream.WriteAsync(Batch("o", Put(2, "d", "o2", "1")));
        Assert.True(await resumed.ResponseStream.MoveNext());
        Assert.Equal(3UL, resumed.ResponseStream.Current.Cursor);
    }

    [Fact]
    public async Task Health_reports_serving()
    {
        var health = new Grpc.Health.V1.Health.HealthClient(_s.Channel);
        foreach (var service in new[] { "", Reasons.ServiceName })
        {
            var r = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest { Service = service });
            Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, r.Status);
        }
    }

    [Fact]
    public async Task A_configured_creator_token_is_required()
    {
        await using var s = await LoopbackServer.StartAsync(o => o.CreatorToken = "tok");
        var req = new CreateShareRequest { ShareKey = "k", OwnerSecret = ByteString.CopyFrom(NewSecret()) };
        await FailsWith(async () => await Stub(s.Channel).CreateShareAsync(req), StatusCode.Unauthenticated, Reasons.CreatorToken);
        var ok = await Stub(s.Channel).CreateShareAsync(req, LoopbackServer.Bearer("tok"));
        Assert.True(ok.Created);
    }

    [Fact]
    public async Task Subscribe_from_any_cursor_yields_the_log_suffix_then_live_ops_and_rebuilds_the_snapshot()
    {
        var (_, live) = await _s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        using (var call = Stub(_s.Channel).AppendOps(auth))
        {
            await call.RequestStream.WriteAsync(Batch("p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"), AppendOp(3, "m", "x"), Delete(4, "d", "a"), Put(5, "d", "b", "2")));
            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext()) { }
        }

        for (ulong from = 0; from <= 6; from++)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var sub = Stub(_s.Channel).Subscribe(new SubscribeRequest { FromCursor = from }, auth.WithCancellationToken(cts.Token));
            var cursors = new List<ulong>();
            for (var expected = Math.Max(from, 1); expected <= 5; expected++)
            {
                Assert.True(await sub.ResponseStream.MoveNext());
                cursors.Add(sub.ResponseStream.Current.Op.Cursor);
            }
            Assert.Equal(Enumerable.Range((int)Math.Max(from, 1), (int)(6 - Math.Max(from, 1))).Select(c => (ulong)c), cursors);
        }

        // From the start, with a snapshot: rebuild the documents from the stream and compare with GetSnapshot.
        using var full = Stub(_s.Channel).Subscribe(new SubscribeRequest { IncludeSnapshot = true }, auth);
        var docs = new Dictionary<(string, string), string>();
        Assert.True(await full.ResponseStream.MoveNext());
        var snap = full.ResponseStream.Current.Snapshot;
        Assert.True(snap.LastChunk);
        Assert.Equal(5UL, snap.Cursor);
        foreach (var d in snap.Documents) docs[(d.Collection, d.Key)] = d.Value.ToStringUtf8();

        using (var call = Stub(_s.Channel).AppendOps(auth))
        {
            await call.RequestStream.WriteAsync(Batch("q", Put(1, "d", "c", "live"), Delete(2, "d", "b")));
            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext()) { }
        }
        var seen = 0;
        while (seen < 2 && await full.ResponseStream.MoveNext())
        {
            var ev = full.ResponseStream.Current;
            if (ev.EventCase != SubscribeResponse.EventOneofCase.Op) continue;
            seen++;
            Assert.Equal(5UL + (ulong)seen, ev.Op.Cursor);
            var op = ev.Op.Op;
            if (op.KindCase == Op.KindOneofCase.Put) docs[(op.Put.Collection, op.Put.Key)] = op.Put.Value.ToStringUtf8();
            else if (op.KindCase == Op.KindOneofCase.Delete) docs.Remove((op.Delete.Collection, op.Delete.Key));
        }
        var now = await Stub(_s.Channel).GetSnapshotAsync(new GetSnapshotRequest(), auth);
        Assert.Equal(now.Documents.Select(d => ((d.Collection, d.Key), d.Value.ToStringUtf8())).OrderBy(x => x.Item1),
            docs.Select(kv => (kv.Key, kv.Value)).OrderBy(x => x.Key));
        Assert.Equal(2, docs.Count); // d/c and m/3
    }

    [Fact]
    public async Task Reflection_lists_the_share_service()
    {
        using var call = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(_s.Channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(x => x.Name).ToList();
        Assert.Contains(Reasons.ServiceName, names);
        Assert.Contains("grpc.health.v1.Health", names);
    }

    [Fact]
    public async Task A_small_in_flight_window_still_acks_every_pipelined_batch_in_order()
    {
        await using var s = await LoopbackServer.StartAsync(o => o.Limits.MaxBatchesInFlightPerStream = 2);
        var (_, live) = await s.NewShareAsync();
        using var call = Stub(s.Channel).AppendOps(LoopbackServer.Bearer(live.LiveRef));
        var batches = Enumerable.Range(1, 50).Select(i => Batch("p", Put((ulong)i, "d", "k" + i, "v"))).ToList();
        var reading = Task.Run(async () =>
        {
            var acks = new List<AppendOpsResponse>();
            while (await call.ResponseStream.MoveNext()) acks.Add(call.ResponseStream.Current);
            return acks;
        });
        foreach (var b in batches) await call.RequestStream.WriteAsync(b);
        await call.RequestStream.CompleteAsync();
        var got = await reading;
        Assert.Equal(batches.Select(b => b.BatchId), got.Select(a => a.BatchId));
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (ulong)i), got.Select(a => a.Cursor));
    }

    [Fact]
    public async Task Shutdown_acks_batches_already_read_then_ends_streams_unavailable()
    {
        await using var s = await LoopbackServer.StartAsync();
        var (_, live) = await s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        using var sub = Stub(s.Channel).Subscribe(new SubscribeRequest { IncludeSnapshot = true }, auth);
        Assert.True(await sub.ResponseStream.MoveNext());
        using var call = Stub(s.Channel).AppendOps(auth);
        await call.RequestStream.WriteAsync(Batch("p", Put(1, "d", "a", "1")));
        Assert.True(await call.ResponseStream.MoveNext());

        // Hold the committer, send a batch and wait until the server has queued it, then stop the server.
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = s.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        await call.RequestStream.WriteAsync(Batch("p", Put(2, "d", "b", "1")));
        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            while (s.Engine.Committer.QueuedCount == 0) await Task.Delay(5, deadline.Token); // poll, bounded
        var stopping = s.StopAsync();
        gate.SetResult();
        await blocker;

        Assert.True(await call.ResponseStream.MoveNext()); // the in-flight batch is still acked
        Assert.Equal((OpStatus.Applied, 2UL), (call.ResponseStream.Current.Acks[0].Status, call.ResponseStream.Current.Acks[0].Cursor));
        await FailsWith(() => call.ResponseStream.MoveNext(), StatusCode.Unavailable, Reasons.ShuttingDown);
        var e = await Assert.ThrowsAsync<RpcException>(async () => { while (await sub.ResponseStream.MoveNext()) { } });
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        await stopping;
    }
}
