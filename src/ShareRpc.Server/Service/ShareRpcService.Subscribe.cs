using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

/// <summary>
/// Subscribe (READ): snapshot chunks if asked, the log from from_cursor, then live ops and
/// heartbeats. Events that are ready at once (catching up) share a flush, at most
/// <see cref="MaxEventsPerFlush"/> events and <see cref="MaxBytesPerFlush"/> bytes at a time: each
/// is written with <see cref="WriteFlags.BufferHint"/> while the next one is already there, and
/// flushed when the stream is about to wait.
/// </summary>
internal sealed partial class ShareRpcService
{
    public const int MaxEventsPerFlush = 64;

    /// <summary>
    /// Bytes written without a flush, at most. Only a flush waits for HTTP/2 flow control (Kestrel
    /// takes unflushed writes whatever the peer's window): counting events alone let a reader that
    /// never reads have 64 events of up to 1 MiB each, over and over, buffered in Kestrel (measured:
    /// eight such readers of a 48 MiB log, 384 MiB of response buffers).
    /// </summary>
    public const int MaxBytesPerFlush = 64 * 1024;

    public override async Task Subscribe(SubscribeRequest request, IServerStreamWriter<SubscribeResponse> responseStream, ServerCallContext context)
    {
        try
        {
            await StreamEventsAsync(request, responseStream, context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.ShuttingDown, "the server is shutting down; resubscribe from your last cursor");
        }
    }

    private async Task StreamEventsAsync(SubscribeRequest request, IServerStreamWriter<SubscribeResponse> responseStream, ServerCallContext context)
    {
        var claims = context.Claims();
        using var slot = engine.OpenStream(claims, "Subscribe");
        // The events are read one ahead of the write; `stop` ends a read that is still running when a
        // write fails (see below), and a drain ends the stream (the client resumes from its cursor).
        using var stop = LinkShutdown(context);
        var events = engine.SubscribeAsync(claims, request, stop.Token).GetAsyncEnumerator(stop.Token);
        await using (events.ConfigureAwait(false))
        {
            if (!await events.MoveNextAsync().ConfigureAwait(false)) return;
            var unflushed = 0;
            var unflushedBytes = 0L;
            while (true)
            {
                var current = events.Current;
                var next = events.MoveNextAsync();
                unflushedBytes += current.CalculateSize();
                var buffer = next.IsCompleted && ++unflushed < MaxEventsPerFlush && unflushedBytes < MaxBytesPerFlush;
                if (!buffer) (unflushed, unflushedBytes) = (0, 0);
                try
                {
                    responseStream.WriteOptions = buffer ? s_buffered : null;
                    await WriteOrCutOffAsync(responseStream.WriteAsync(current), context).ConfigureAwait(false);
                }
                catch
                {
                    // The client is gone. Let the running read end before the enumerator is disposed:
                    // disposing an async iterator while a MoveNextAsync is pending throws
                    // NotSupportedException (hiding this error) and leaves the iterator running on its
                    // own — a storage read after the request ended, and its finally (unwatch, the
                    // subscriber count) never run.
                    await stop.CancelAsync().ConfigureAwait(false);
                    try
                    {
                        await next.ConfigureAwait(false);
                    }
                    catch (Exception)
                    {
                        // Cancelled, or its own failure: the write's error is the one to report.
                    }
                    throw;
                }
                if (!await next.ConfigureAwait(false)) break;
            }
        }
    }

    /// <summary>
    /// A peer that takes no event within <see cref="ShareRpcServerOptions.SubscriberStallTimeout"/>
    /// (HTTP/2 flow control holds the write) is cut off: the stream is reset, since a write that
    /// cannot finish leaves no way to send a status, and its chunk's read budget is freed.
    /// </summary>
    private async Task WriteOrCutOffAsync(Task write, ServerCallContext context)
    {
        try
        {
            await write.WaitAsync(Options.SubscriberStallTimeout, engine.Clock).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _ = write.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            context.GetHttpContext().Abort();
            engine.CountStalledSubscriber(context.Claims());
            var limit = Options.SubscriberStallTimeout.TotalSeconds;
            throw new ShareRpcException(ShareRpcStatus.ResourceExhausted, Reasons.Limit,
                $"subscribe: the peer took no event for {limit:0.###} s, SubscriberStallTimeout = {limit:0.###} s", "subscribe");
        }
    }
}
