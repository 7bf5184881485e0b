using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;
using ShareRpc.TestSupport;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Issue 13, item 7: a READ-only delegate could take a share's every subscriber slot (the 256-stream
/// cap was per share, not per capability), and requests that never finished their body were never
/// ended. Now streams are counted per capability (MaxStreamsPerCapability), a unary or
/// server-streaming request message must arrive within RequestBodyTimeout, and an AppendOps stream
/// with nothing in flight that sends nothing for RequestIdleTimeout is ended.
/// </summary>
public sealed class StreamQuotaTests
{
    [Fact]
    public async Task A_read_only_delegate_gets_MaxStreamsPerCapability_streams_and_the_shares_other_subscribers_are_served()
    {
        await using var s = await LoopbackServer.StartAsync(o => o.Limits.MaxSubscribersPerShare = 24);
        var (_, owner) = await s.NewShareAsync();
        var delegated = await Stub(s.Channel).DelegateCapabilityAsync(new DelegateCapabilityRequest
        {
            Rights = { Right.Read },
            Secret = ByteString.CopyFrom(NewSecret()),
        }, LoopbackServer.Bearer(owner.LiveRef));
        var reader = await Stub(s.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = delegated.SturdyRef });
        var hoarder = LoopbackServer.Bearer(reader.LiveRef);
        var quota = s.Engine.Options.Limits.MaxStreamsPerCapability;

        var held = new List<AsyncServerStreamingCall<SubscribeResponse>>();
        try
        {
            // The delegate opens streams until refused: at its quota, not at the share's 24.
            for (var i = 0; i < quota; i++)
            {
                var call = Stub(s.Channel).Subscribe(new SubscribeRequest(), hoarder);
                held.Add(call);
                Assert.True(await call.ResponseStream.MoveNext()); // open: a heartbeat
            }
            using var refused = Stub(s.Channel).Subscribe(new SubscribeRequest(), hoarder);
            var e = await Assert.ThrowsAsync<RpcException>(() => refused.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Equal("stream", e.Trailers.GetValue(Reasons.FieldTrailerName));
            Assert.Contains($"exceeds MaxStreamsPerCapability = {quota} streams", e.Status.Detail);
            using var append = Stub(s.Channel).AppendOps(hoarder); // AppendOps counts too
            await Assert.ThrowsAsync<RpcException>(() => append.ResponseStream.MoveNext());

            // The owner (another capability) still subscribes.
            using var others = Stub(s.Channel).Subscribe(new SubscribeRequest(), LoopbackServer.Bearer(owner.LiveRef));
            Assert.True(await others.ResponseStream.MoveNext());
        }
        finally
        {
            foreach (var c in held) c.Dispose();
        }
        // A closed stream gives its slot back.
        await Wait.UntilAsync(() => s.Engine.OpenStreams(reader.CapabilityId) == 0, TimeSpan.FromSeconds(30), "s.Engine.OpenStreams(reader.CapabilityId) == 0");
        using var again = Stub(s.Channel).Subscribe(new SubscribeRequest(), hoarder);
        Assert.True(await again.ResponseStream.MoveNext());
    }

    /// <summary>A request body that sends a few bytes of its message, then nothing (its stream stays open).</summary>
    private sealed class StallingContent(byte[] prefix) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(prefix);
            await stream.FlushAsync();
            await Task.Delay(Timeout.Infinite, new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token).ContinueWith(_ => { });
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    [Theory]
    [InlineData("RedeemShare")]
    [InlineData("Subscribe")]
    public async Task A_request_message_that_does_not_arrive_within_RequestBodyTimeout_ends_UNAVAILABLE_idle_timeout(string method)
    {
        // 1 s: before Kestrel's own MinRequestBodyDataRate grace (5 s), which resets the stream with no status.
        await using var s = await LoopbackServer.StartAsync(o => o.RequestBodyTimeout = TimeSpan.FromSeconds(1));
        using var http = new HttpMessageInvoker(new SocketsHttpHandler());
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{s.Address}{Reasons.ServiceName}/{method}")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new StallingContent([0, 0, 0, 0, 100, 0x0A, 0x05]), // a 100-byte message of which 2 bytes come
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        var clock = Stopwatch.StartNew();

        using var response = await http.SendAsync(request, new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        await response.Content.ReadAsByteArrayAsync();
        string? Get(string name) => response.Headers.TryGetValues(name, out var h) ? h.First()
            : response.TrailingHeaders.TryGetValues(name, out var t) ? t.First() : null;

        Assert.Equal("14", Get("grpc-status")); // UNAVAILABLE, a status and not a reset
        Assert.Equal(Reasons.IdleTimeout, Get(Reasons.TrailerName));
        Assert.Contains("RequestBodyTimeout", Uri.UnescapeDataString(Get("grpc-message") ?? ""));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"ended after {clock.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task An_AppendOps_stream_idle_for_RequestIdleTimeout_ends_UNAVAILABLE_one_with_a_batch_in_flight_does_not()
    {
        await using var s = await LoopbackServer.StartAsync(o => o.RequestIdleTimeout = TimeSpan.FromSeconds(1));
        var (_, busyLive) = await s.NewShareAsync();
        var (_, idleLive) = await s.NewShareAsync();

        // A batch in flight for longer than the idle timeout: the committer is held.
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = s.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        try
        {
            using var busy = Stub(s.Channel).AppendOps(LoopbackServer.Bearer(busyLive.LiveRef));
            await busy.RequestStream.WriteAsync(Batch("p", Put(1, "d", "a", "1")));
            await Wait.UntilAsync(() => s.Engine.Committer.QueuedCount == 1, TimeSpan.FromSeconds(30), "s.Engine.Committer.QueuedCount == 1");
            var busyAck = busy.ResponseStream.MoveNext();

            // Opened after the busy stream's batch was read: when it has been idle for the timeout, so has
            // the busy one — and only the idle one is ended.
            using var idle = Stub(s.Channel).AppendOps(LoopbackServer.Bearer(idleLive.LiveRef));
            var e = await Assert.ThrowsAsync<RpcException>(() => idle.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Equal(Reasons.IdleTimeout, e.Trailers.GetValue(Reasons.TrailerName));
            Assert.Contains("RequestIdleTimeout = 1 s", e.Status.Detail);
            Assert.False(busyAck.IsCompleted);

            gate.SetResult();
            await blocker;
            Assert.True(await busyAck);
            Assert.Equal(OpStatus.Applied, busy.ResponseStream.Current.Acks[0].Status);
        }
        finally
        {
            gate.TrySetResult();
        }
    }
}
