using System.Threading.Channels;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using ShareRpc.Server.Apply;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

/// <summary>
/// AppendOps (docs/design.md, "AppendOps semantics"): the client streams batches without waiting;
/// each is validated and queued to the group committer as it arrives, and the acks go back strictly
/// in batch order. Acks that are ready together share one flush (<see cref="WriteFlags.BufferHint"/>
/// on all but the last). A failing batch ends the stream with its status after every earlier batch
/// has been acked. A revoke that moves the share's epoch ends the stream (PERMISSION_DENIED revoked /
/// UNAUTHENTICATED epoch-stale) even when it is idle; so does a drain (UNAVAILABLE shutting-down),
/// after every batch already queued has committed and been acked.
/// <para>
/// What one stream may hold is bounded in batches (MaxBatchesInFlightPerStream) and in bytes
/// (MaxInFlightBytesPerStream: batches read and not yet committed, then their acks until written),
/// and the write queue of all streams in bytes (MaxQueuedWriteBytes). When either is full the
/// reader waits before it reads the next message, so HTTP/2 flow control stops the peer: memory is
/// never the buffer (docs/design.md, "Limits"). A stream with nothing in flight that sends nothing
/// for RequestIdleTimeout is ended UNAVAILABLE idle-timeout.
/// </para>
/// </summary>
internal sealed partial class ShareRpcService
{
    private static readonly WriteOptions s_buffered = new(WriteFlags.BufferHint);

    /// <summary>A batch queued on a stream: its ack to come, and the bytes it holds in the stream's window.</summary>
    private readonly record struct InFlight(Task<AppendOpsResponse> Ack, long Bytes);

    public override async Task AppendOps(IAsyncStreamReader<AppendOpsRequest> requestStream, IServerStreamWriter<AppendOpsResponse> responseStream, ServerCallContext context)
    {
        var claims = context.Claims();
        using var slot = engine.OpenStream(claims, "AppendOps");
        using var stopReading = LinkShutdown(context);
        using var writerGone = new CancellationTokenSource(); // ends a reader that waits for room only the writer can free
        var window = engine.NewStreamWindow();
        var inFlight = Channel.CreateBounded<InFlight>(new BoundedChannelOptions(Options.Limits.MaxBatchesInFlightPerStream)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        var fenced = false;
        var fence = engine.WaitForFenceAsync(claims, stopReading.Token).ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully)
            {
                fenced = true;
                stopReading.Cancel();
            }
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var stream = new StreamState(claims, window, inFlight.Writer, context, stopReading.Token, writerGone.Token) { LastActivity = engine.Clock.GetTimestamp() };
        var reading = ReadBatchesAsync(requestStream, stream);
        try
        {
            // The loop ends when the reader stops (end of input, reset, fence, idle or shutdown). Every batch already
            // queued still commits and is acked, also on shutdown, before the stream ends.
            await WriteAcksAsync(stream, inFlight.Reader, responseStream).ConfigureAwait(false);
            if (fenced) await engine.CheckAccessAsync(claims, Rights.Append, CancellationToken.None).ConfigureAwait(false);
            if (lifetime.ApplicationStopping.IsCancellationRequested)
                throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.ShuttingDown, "the server is shutting down; reconnect and resend unacked batches");
            context.CancellationToken.ThrowIfCancellationRequested();
        }
        finally
        {
            await writerGone.CancelAsync().ConfigureAwait(false);
            await stopReading.CancelAsync().ConfigureAwait(false);
            try { await reading.ConfigureAwait(false); } catch (Exception) { /* already reported through the channel */ }
            await fence.ConfigureAwait(false);
            window.Release(window.InUse); // acks never written (the peer left): nothing holds them any more
        }
    }

    /// <summary>What the reader of one stream works with.</summary>
    private sealed record StreamState(LiveRefClaims Claims, ByteBudget Window, ChannelWriter<InFlight> InFlight, ServerCallContext Context,
        CancellationToken StopReading, CancellationToken WriterGone)
    {
        /// <summary>When a batch was last read or an ack last written (the idle timeout counts from it).</summary>
        public long LastActivity;
    }

    /// <summary>
    /// Writes each ack in batch order; buffers it when the next one is ready too, so a burst costs one
    /// flush. A committed batch's bytes leave the window for its ack's, which leave once written.
    /// </summary>
    private async Task WriteAcksAsync(StreamState stream, ChannelReader<InFlight> inFlight, IServerStreamWriter<AppendOpsResponse> responses)
    {
        var (claims, window, context) = (stream.Claims, stream.Window, stream.Context);
        var unflushedBytes = 0L; // only a flush waits for flow control: what is buffered is bounded in bytes (MaxBytesPerFlush)
        while (await inFlight.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (inFlight.TryRead(out var pending))
            {
                var ack = await pending.Ack.ConfigureAwait(false);
                var ackBytes = ack.CalculateSize();
                window.ForceAcquire(ackBytes); // the ack is in memory now; the batch it answers can go
                window.Release(pending.Bytes);
                // With fault hooks set (tests, chaos) every ack is flushed: a fault on the next one must not hold it back.
                unflushedBytes += ackBytes;
                var more = Options.Faults is null && inFlight.TryPeek(out var next) && next.Ack.IsCompleted && unflushedBytes < MaxBytesPerFlush;
                if (!more) unflushedBytes = 0;
                if (Options.Faults?.BeforeAck is { } beforeAck
                    && await beforeAck(new ServerBatchContext(claims.ShareId, claims.CapabilityId, ack.BatchId, "")).ConfigureAwait(false) is var fault and not StreamFault.None)
                {
                    throw InjectFault(context, fault); // acks before this one are already written and flushed
                }
                responses.WriteOptions = more ? s_buffered : null;
                await responses.WriteAsync(ack).ConfigureAwait(false);
                Interlocked.Exchange(ref stream.LastActivity, engine.Clock.GetTimestamp());
                window.Release(ackBytes);
            }
        }
    }

    /// <summary>Applies an injected stream fault (<see cref="ServerFaultHooks"/>); returns the exception that ends the handler.</summary>
    private static OperationCanceledException InjectFault(ServerCallContext context, StreamFault fault)
    {
        var http = context.GetHttpContext();
        if (fault == StreamFault.Reset && http.Features.Get<IHttpResetFeature>() is { } reset)
            reset.Reset(0x8); // CANCEL
        else
            http.Abort();
        return new OperationCanceledException("injected fault: " + fault);
    }

    private async Task ReadBatchesAsync(IAsyncStreamReader<AppendOpsRequest> requests, StreamState stream)
    {
        try
        {
            while (await NextBatchAsync(requests, stream).ConfigureAwait(false))
            {
                if (!await SubmitAsync(requests.Current, stream).ConfigureAwait(false)) return;
            }
        }
        catch (OperationCanceledException) when (stream.StopReading.IsCancellationRequested || stream.WriterGone.IsCancellationRequested)
        {
            // Stopped on purpose (fence, shutdown, writer failed) or the call was cancelled: the writer reports why.
        }
        catch (Exception e)
        {
            // Reported in order, after the acks of every batch before it.
            try { await stream.InFlight.WriteAsync(new InFlight(Task.FromException<AppendOpsResponse>(e), 0), stream.WriterGone).ConfigureAwait(false); }
            catch (OperationCanceledException) { /* the writer has already ended the call */ }
        }
        finally
        {
            stream.InFlight.TryComplete();
        }
    }

    /// <summary>
    /// The next message, or false at the end of input. While nothing is in flight (the window is
    /// empty), a peer that sends nothing for RequestIdleTimeout gets UNAVAILABLE idle-timeout.
    /// </summary>
    private async Task<bool> NextBatchAsync(IAsyncStreamReader<AppendOpsRequest> requests, StreamState stream)
    {
        using var read = CancellationTokenSource.CreateLinkedTokenSource(stream.StopReading);
        var moving = requests.MoveNext(read.Token);
        var clock = engine.Clock;
        var idle = Options.RequestIdleTimeout;
        while (!moving.IsCompleted)
        {
            var quiet = clock.GetElapsedTime(Interlocked.Read(ref stream.LastActivity));
            if (stream.Window.InUse == 0 && quiet >= idle)
            {
                await read.CancelAsync().ConfigureAwait(false);
                try { await moving.ConfigureAwait(false); } catch (OperationCanceledException) { }
                var seconds = idle.TotalSeconds;
                throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.IdleTimeout,
                    $"no batch for {seconds:0.###} s with nothing in flight (RequestIdleTimeout = {seconds:0.###} s); open a new stream when there is something to send");
            }
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(read.Token);
            var timer = Task.Delay(quiet < idle ? idle - quiet : idle, clock, wait.Token);
            await Task.WhenAny(moving, timer).ConfigureAwait(false);
            await wait.CancelAsync().ConfigureAwait(false);
        }
        var more = await moving.ConfigureAwait(false);
        Interlocked.Exchange(ref stream.LastActivity, clock.GetTimestamp());
        return more;
    }

    /// <summary>
    /// Queues one batch (or its refusal) behind the earlier ones; false after a refusal: nothing after
    /// it is read. First the batch takes its bytes from the stream's window (waiting for acks to free
    /// it), then from the server-wide queue (waiting for commits to free it).
    /// </summary>
    private async Task<bool> SubmitAsync(AppendOpsRequest batch, StreamState stream)
    {
        var claims = stream.Claims;
        Task<AppendOpsResponse> pending;
        long bytes = 0;
        try
        {
            if (Options.Faults?.OnBatchRead is { } onRead
                && await onRead(new ServerBatchContext(claims.ShareId, claims.CapabilityId, batch.BatchId, batch.ProducerId)).ConfigureAwait(false) is var fault and not StreamFault.None)
            {
                throw InjectFault(stream.Context, fault); // reported in order: earlier batches are still acked
            }

            bytes = batch.CalculateSize();
            await stream.Window.AcquireAsync(bytes, stream.WriterGone).ConfigureAwait(false);
            // Once read, a batch is applied and acked even on shutdown: no token (commits free the queue).
            try
            {
                pending = await engine.EnqueueAppendAsync(claims, batch, CancellationToken.None, bytes).ConfigureAwait(false);
            }
            catch
            {
                stream.Window.Release(bytes);
                throw;
            }
        }
        catch (ShareRpcException e)
        {
            pending = Task.FromException<AppendOpsResponse>(e);
            bytes = 0;
        }
        await stream.InFlight.WriteAsync(new InFlight(pending, bytes), stream.WriterGone).ConfigureAwait(false);
        return !pending.IsFaulted;
    }
}
