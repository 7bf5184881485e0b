using Google.Protobuf;
using Grpc.Core;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>The fence: once RevokeCapability has returned, no op under an older epoch is applied.</summary>
public class RevokeRaceTests
{
    [Fact]
    public async Task Revoke_racing_four_appenders_in_process_100_rounds()
    {
        await using var f = new EngineFixture();
        for (var round = 0; round < 100; round++)
        {
            var (owner, ownerRef) = await f.NewShareAsync();
            var holders = new LiveRefClaims[4];
            var capIds = new string[4];
            for (var i = 0; i < 4; i++)
            {
                var d = await f.Engine.DelegateAsync(owner, new DelegateCapabilityRequest { Rights = { Right.Append }, Secret = ByteString.CopyFrom(NewSecret()) }, Endpoint);
                capIds[i] = d.CapabilityId;
                holders[i] = await f.RedeemAsync(d.SturdyRef);
            }
            var appliedSoFar = 0;
            var warm = new TaskCompletionSource();
            var warmAfter = 1 + round % 7;
            var appenders = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
            {
                var applied = new List<ulong>();
                for (ulong seq = 1; seq < 100_000; seq++)
                {
                    try
                    {
                        var ack = await f.AppendAsync(holders[i], "p" + i, Put(seq, "d", $"{i}-{seq}", "v"));
                        Assert.Equal(OpStatus.Applied, ack.Acks[0].Status);
                        applied.Add(ack.Acks[0].Cursor);
                        if (Interlocked.Increment(ref appliedSoFar) >= warmAfter) warm.TrySetResult();
                    }
                    catch (ShareRpcException e)
                    {
                        return (Error: e, Applied: applied);
                    }
                }
                throw new InvalidOperationException("the appender was never fenced");
            })).ToArray();

            await warm.Task;
            var revoke = await f.Engine.RevokeAsync(owner, new RevokeCapabilityRequest { CapabilityId = capIds[0] });
            var owner2 = await f.RedeemAsync(ownerRef);
            var headAfterRevoke = (await f.Engine.GetSnapshotAsync(owner2, new GetSnapshotRequest())).Cursor;
            Assert.Equal(revoke.Epoch, owner2.Epoch);

            var results = await Task.WhenAll(appenders);
            Assert.Equal((ShareRpcStatus.PermissionDenied, Reasons.Revoked), (results[0].Error.Status, results[0].Error.Reason));
            for (var i = 1; i < 4; i++)
                Assert.Equal((ShareRpcStatus.Unauthenticated, Reasons.EpochStale), (results[i].Error.Status, results[i].Error.Reason));
            var head = (await f.Engine.GetSnapshotAsync(owner2, new GetSnapshotRequest())).Cursor;
            Assert.Equal(headAfterRevoke, head); // nothing applied after the revoke returned
            // Every applied op was acked, cursors gap-free.
            Assert.Equal(Enumerable.Range(1, (int)head).Select(c => (ulong)c), results.SelectMany(r => r.Applied).Order());
        }
    }

    [Fact]
    public async Task Revoke_racing_four_append_streams_over_loopback_100_rounds()
    {
        await using var s = await LoopbackServer.StartAsync();
        for (var round = 0; round < 100; round++)
        {
            var (ownerRef, owner) = await s.NewShareAsync();
            var refs = new string[4];
            var capIds = new string[4];
            var lives = new string[4];
            for (var i = 0; i < 4; i++)
            {
                var d = await Stub(s.Channel).DelegateCapabilityAsync(new DelegateCapabilityRequest { Rights = { Right.Append, Right.Read }, Secret = ByteString.CopyFrom(NewSecret()) }, LoopbackServer.Bearer(owner.LiveRef));
                (refs[i], capIds[i]) = (d.SturdyRef, d.CapabilityId);
                lives[i] = (await Stub(s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = d.SturdyRef })).LiveRef;
            }
            var appliedSoFar = 0;
            var warm = new TaskCompletionSource();
            var warmAfter = 1 + round % 7;
            var appenders = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
            {
                var applied = new List<ulong>();
                using var call = Stub(s.Channel).AppendOps(LoopbackServer.Bearer(lives[i]));
                for (ulong seq = 1; seq < 100_000; seq++)
                {
                    try
                    {
                        await call.RequestStream.WriteAsync(Batch("p" + i, Put(seq, "d", $"{i}-{seq}", "v")));
                        if (!await call.ResponseStream.MoveNext()) throw new InvalidOperationException("stream ended without status");
                        applied.Add(call.ResponseStream.Current.Acks[0].Cursor);
                        if (Interlocked.Increment(ref appliedSoFar) >= warmAfter) warm.TrySetResult();
                    }
                    catch (RpcException e)
                    {
                        // A write to a call the server has ended fails CANCELLED (Grpc.Net.Client); the response side has the real status.
                        return (Error: await EndStatusAsync(call, e, applied), Applied: applied, NextSeq: seq);
                    }
                }
                throw new InvalidOperationException("the appender was never fenced");
            })).ToArray();

            await warm.Task;
            var revoke = await Stub(s.Channel).RevokeCapabilityAsync(new RevokeCapabilityRequest { CapabilityId = capIds[0] }, LoopbackServer.Bearer(owner.LiveRef));
            var owner2 = await Stub(s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = ownerRef });
            var headAfterRevoke = owner2.Cursor;
            Assert.Equal(revoke.Epoch, owner2.Epoch);

            var results = await Task.WhenAll(appenders);
            Assert.Equal((StatusCode.PermissionDenied, Reasons.Revoked), (results[0].Error.StatusCode, results[0].Error.Trailers.GetValue(Reasons.TrailerName)));
            for (var i = 1; i < 4; i++)
                Assert.Equal((StatusCode.Unauthenticated, Reasons.EpochStale), (results[i].Error.StatusCode, results[i].Error.Trailers.GetValue(Reasons.TrailerName)));
            var head = (await Stub(s.Channel).GetSnapshotAsync(new GetSnapshotRequest(), LoopbackServer.Bearer(owner2.LiveRef))).Cursor;
            Assert.Equal(headAfterRevoke, head);
            // Every applied op was acked before its stream ended (the writer drains queued batches first).
            Assert.Equal(Enumerable.Range(1, (int)head).Select(c => (ulong)c), results.SelectMany(r => r.Applied).Order());

            // An unrevoked holder redeems again and goes on; the revoked one cannot.
            var again = await Stub(s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = refs[1] });
            using (var resumed = Stub(s.Channel).AppendOps(LoopbackServer.Bearer(again.LiveRef)))
            {
                await resumed.RequestStream.WriteAsync(Batch("p1", Put(results[1].NextSeq, "d", "resumed", "v")));
                Assert.True(await resumed.ResponseStream.MoveNext());
                Assert.Equal((OpStatus.Applied, head + 1), (resumed.ResponseStream.Current.Acks[0].Status, resumed.ResponseStream.Current.Acks[0].Cursor));
            }
            var e = await Assert.ThrowsAsync<RpcException>(async () =>
                await Stub(s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = refs[0] }));
            Assert.Equal(StatusCode.PermissionDenied, e.StatusCode);
        }
    }

    /// <summary>The status the server ended the call with (acks still in flight are collected on the way).</summary>
    private static async Task<RpcException> EndStatusAsync(AsyncDuplexStreamingCall<AppendOpsRequest, AppendOpsResponse> call, RpcException first, List<ulong> applied)
    {
        try
        {
            while (await call.ResponseStream.MoveNext()) applied.AddRange(call.ResponseStream.Current.Acks.Select(a => a.Cursor));
            return first;
        }
        catch (RpcException end)
        {
            return end;
        }
    }
}
