using Microsoft.AspNetCore.Http;
using ShareRpc.Protocol.V1;
using ShareRpc.Server.Service;
using ShareRpc.Wire;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

/// <summary>The Subscribe handler's own logic: flushing events read one ahead, and what happens when the client is gone.</summary>
public sealed class SubscribeHandlerTests : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture(o => o.HeartbeatInterval = TimeSpan.FromMinutes(5)); // the pending read would otherwise end at a heartbeat
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    /// <summary>
    /// Regression (chaos on PostgreSQL: "NotSupportedException: Specified method is not supported" from the Subscribe
    /// handler, in the soak after this fix's commit's parent). The handler reads the next event before it flushes the
    /// ones it buffered; when that flush failed (the client was gone), it disposed the event enumerator while the
    /// read was still running: the async iterator threw NotSupportedException (hiding the real error) and went on
    /// running on its own, reading storage after the request had ended, its finally — unwatch, subscriber count —
    /// never run. Now the handler stops the running read, waits for it, and reports the flush's error.
    /// </summary>
    [Fact]
    public async Task A_flush_that_fails_while_the_next_read_runs_ends_with_the_flush_error_and_the_stream_unwatches()
    {
        var (owner, sturdyRef) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        var live = await _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = sturdyRef });
        var writer = new FailingWriter();
        using var call = new CancellationTokenSource();
        var context = new Context(new Metadata { { "authorization", "Bearer " + live.LiveRef } }, call.Token);

        var handle = new SubscribeHandler(_f.Engine).Handle(new SubscribeRequest(), writer, context);
        var error = await Assert.ThrowsAsync<IOException>(() => handle.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(FailingWriter.Message, error.Message); // not NotSupportedException from disposing a running iterator
        Assert.Equal(1, writer.Buffered); // the op, read before the (failed) flush; the next read was waiting for a change
        Assert.Equal(0, _f.Engine.Notifier.WatchedShares); // the iterator's finally ran: nothing watches the share any more
        Assert.False(call.IsCancellationRequested); // ended by the handler itself, not by the call's token
    }

    /// <summary>A response stream whose client is gone: buffering works, every flush fails.</summary>
    private sealed class FailingWriter : IServerStreamWriter<SubscribeResponse>
    {
        public const string Message = "the client reset the stream";

        public int Buffered { get; private set; }

        public void WriteBuffered(SubscribeResponse message) => Buffered++;

        public Task FlushAsync(CancellationToken cancellationToken = default) => Task.FromException(new IOException(Message));

        public Task WriteAsync(SubscribeResponse message, CancellationToken cancellationToken) => Task.FromException(new IOException(Message));
    }

    private sealed class Context(Metadata headers, CancellationToken token) : ServerCallContext
    {
        public override string Method => "/sharerpc.v1.ShareRpc/Subscribe";
        public override string Peer => "ipv4:127.0.0.1:1";
        public override DateTime Deadline => DateTime.MaxValue;
        public override Metadata RequestHeaders => headers;
        public override Metadata ResponseTrailers { get; } = new();
        public override CancellationToken CancellationToken => token;
        public override Status Status { get; set; }
        public override Task WriteResponseHeadersAsync(Metadata responseHeaders) => Task.CompletedTask;
        public override HttpContext HttpContext { get; } = new DefaultHttpContext();
    }
}
