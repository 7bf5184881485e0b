using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Issue 13, item 6: invalid UTF-8 ids collided. A peer sent op_id 0xFF: it was applied (the bad
/// byte replaced by U+FFFD), then op_id 0xFE came back DUPLICATE of it, a distinct op silently
/// dropped. Google.Protobuf 3.36 now fails the parse of invalid UTF-8 and the strict binder answers
/// INVALID_ARGUMENT; these tests send the raw bytes over a real HTTP/2 connection and pin that.
/// Ids are compared byte for byte, and their length limits count UTF-8 bytes.
/// </summary>
public sealed class Utf8IdTests : IAsyncLifetime
{
    private static readonly Marshaller<byte[]> s_raw = Marshallers.Create(b => b, b => b);
    private static readonly Method<byte[], byte[]> s_appendOps = new(MethodType.DuplexStreaming, Reasons.ServiceName, "AppendOps", s_raw, s_raw);
    private static readonly Method<byte[], byte[]> s_createShare = new(MethodType.Unary, Reasons.ServiceName, "CreateShare", s_raw, s_raw);

    private LoopbackServer _s = null!;

    public async Task InitializeAsync() => _s = await LoopbackServer.StartAsync(o => o.FsyncEveryCommit = false);

    public async Task DisposeAsync() => await _s.DisposeAsync();

    /// <summary>An AppendOps request whose op_id is <paramref name="first"/> followed by "op-0001": the first byte set on the wire.</summary>
    private static byte[] BatchWithOpIdByte(byte first, ulong seq)
    {
        var bytes = Batch("p", Put(seq, "d", "k" + seq, "v", opId: "Zop-0001")).ToByteArray();
        var marker = Encoding.ASCII.GetBytes("Zop-0001");
        var at = bytes.AsSpan().IndexOf(marker);
        Assert.True(at > 0);
        bytes[at] = first;
        return bytes;
    }

    private async Task<RpcException> AppendRawAsync(CallOptions auth, byte[] request)
    {
        using var call = _s.Channel.CreateCallInvoker().AsyncDuplexStreamingCall(s_appendOps, null, auth);
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        return await Assert.ThrowsAsync<RpcException>(async () => { while (await call.ResponseStream.MoveNext()) { } });
    }

    [Fact]
    public async Task Op_ids_0xFF_then_0xFE_are_both_refused_neither_applied_and_the_second_is_no_duplicate_of_the_first()
    {
        var (_, live) = await _s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);

        foreach (var b in new byte[] { 0xFF, 0xFE })
        {
            var e = await AppendRawAsync(auth, BatchWithOpIdByte(b, 1));
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode); // not an ack at all, so not DUPLICATE either
            Assert.Equal(Reasons.InvalidArgument, e.Trailers.GetValue(Reasons.TrailerName));
            Assert.Contains("does not parse", e.Status.Detail);
        }

        var snapshot = await Stub(_s.Channel).GetSnapshotAsync(new GetSnapshotRequest(), auth);
        Assert.Equal(0UL, snapshot.Cursor); // nothing applied
        // The same op with a valid id is the first op of the share.
        using var call = Stub(_s.Channel).AppendOps(auth);
        await call.RequestStream.WriteAsync(Batch("p", Put(1, "d", "k1", "v", opId: "\u00FFop-0001")));
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal((OpStatus.Applied, 1UL), (call.ResponseStream.Current.Acks[0].Status, call.ResponseStream.Current.Acks[0].Cursor));
    }

    [Fact]
    public async Task A_unary_request_with_invalid_utf8_is_INVALID_ARGUMENT_not_UNKNOWN()
    {
        var request = new CreateShareRequest { ShareKey = "Zkey", OwnerSecret = ByteString.CopyFrom(NewSecret()) }.ToByteArray();
        request[request.AsSpan().IndexOf("Zkey"u8)] = 0xC3; // a lead byte with no continuation
        var e = await Assert.ThrowsAsync<RpcException>(() => _s.Channel.CreateCallInvoker().AsyncUnaryCall(s_createShare, null, default, request).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal(Reasons.InvalidArgument, e.Trailers.GetValue(Reasons.TrailerName));
    }

    [Fact]
    public async Task Id_and_key_limits_count_utf8_bytes_and_distinct_ids_that_look_alike_stay_distinct()
    {
        var (_, live) = await _s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        var limit = _s.Engine.Options.Limits.MaxIdLength;

        // 64 chars, 128 bytes: at the limit; one more char, 130 bytes: over it (it was 65 "chars", under 128).
        var atLimit = new string('é', limit / 2);
        using (var call = Stub(_s.Channel).AppendOps(auth))
        {
            await call.RequestStream.WriteAsync(Batch("p", Put(1, "d", "a", "v", opId: atLimit)));
            // NFC "é" and NFD "e\u0301" are distinct ids: compared byte for byte, both apply.
            await call.RequestStream.WriteAsync(Batch("p", Put(2, "d", "b", "v", opId: "caf\u00E9"), Put(3, "d", "c", "v", opId: "cafe\u0301")));
            await call.RequestStream.WriteAsync(Batch("p", Put(4, "d", "e", "v", opId: atLimit + "é")));
            await call.RequestStream.CompleteAsync();
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(OpStatus.Applied, call.ResponseStream.Current.Acks[0].Status);
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.All(call.ResponseStream.Current.Acks, a => Assert.Equal(OpStatus.Applied, a.Status));
            var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Equal("ops[0].op_id", e.Trailers.GetValue(Reasons.FieldTrailerName));
            Assert.Contains($"130 bytes exceeds MaxIdLength = {limit} bytes", e.Status.Detail);
        }
    }
}
