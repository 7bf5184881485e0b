using Grpc.Core;
using Microsoft.Extensions.Hosting;
using ShareRpc.Server.Service;
using Sharerpc.V1;
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
    /// never run. Now the handler stops the running read, waits for it, and reports the write's error.
    /// </summary>
    [Fact]
    public async Task A_write_that_fails_while_the_next_read_runs_ends_with_the_write_error_and_the_stream_unwatches()
    {
        var (owner, sturdyRef) = await _f.NewShareAsync();
        await _f.AppendAsync(owner, "p", Put(1, "d", "a", "1"));
        var live = await _f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = sturdyRef });
        var writer = new FailingWriter();
        using var call = new CancellationTokenSource();
        var context = new Context(new Metadata { { "authorization", "Bearer " + live.LiveRef } }, call.Token);

        var service = new ShareRpcService(_f.Engine, new NotStopping());
        var handle = new ShareRpcCallInterceptor(_f.Engine).ServerStreamingServerHandler(new SubscribeRequest(), writer, context, service.Subscribe);
        var error = await Assert.ThrowsAsync<IOException>(() => handle.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(FailingWriter.Message, error.Message); // not NotSupportedException from disposing a running iterator
        Assert.Equal(1, writer.Writes); // the op, written (and flushed: the next read was waiting for a change) and failed
        Assert.Equal(0, _f.Engine.Notifier.WatchedShares); // the iterator's finally ran: nothing watches the share any more
        Assert.False(call.IsCancellationRequested); // ended by the handler itself, not by the call's token
    }

    /// <summary>A response stream whose client is gone: every write fails.</summary>
    private sealed class FailingWriter : IServerStreamWriter<SubscribeResponse>
    {
        public const string Message = "the client reset the stream";

        public int Writes { get; private set; }

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(SubscribeResponse message)
        {
            Writes++;
            return Task.FromException(new IOException(Message));
        }
    }

    private sealed class NotStopping : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;
        public CancellationToken ApplicationStopping => CancellationToken.None;
        public CancellationToken ApplicationStopped => CancellationToken.None;
        public void StopApplication() { }
    }

    /// <summary>Just enough of a call for the interceptor and the handler: its method, headers and token.</summary>
    private sealed class Context(Metadata headers, CancellationToken token) : ServerCallContext
    {
        private readonly Dictionary<object, object> _userState = [];

        protected override string MethodCore => "/sharerpc.v1.ShareRpc/Subscribe";
        protected override string HostCore => "127.0.0.1";
        protected override string PeerCore => "ipv4:127.0.0.1:1";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore => headers;
        protected override CancellationToken CancellationTokenCore => token;
        protected override Metadata ResponseTrailersCore { get; } = [];
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);
        protected override IDictionary<object, object> UserStateCore => _userState;
        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
