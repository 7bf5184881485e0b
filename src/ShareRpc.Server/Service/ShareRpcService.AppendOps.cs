using System.Threading.Channels;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

/// <summary>
/// AppendOps (docs/design.md, "AppendOps semantics"): the client streams batches without waiting;
/// each is validated and queued to the group committer as it arrives (up to
/// MaxBatchesInFlightPerStream un-acked), and the acks go back strictly in batch order. Acks that
/// are ready together share one flush (<see cref="WriteFlags.BufferHint"/> on all but the last).
/// A failing batch ends the stream with its status after every earlier batch has been acked. A
/// revoke that moves the share's epoch ends the stream (PERMISSION_DENIED revoked /
/// UNAUTHENTICATED epoch-stale) even when it is idle; so does a drain (UNAVAILABLE shutting-down),
/// after every batch already read has committed and been acked.
/// </summary>
internal sealed partial class ShareRpcService
{
    private static readonly WriteOptions s_buffered = new(WriteFlags.BufferHint);

    public override async Task AppendOps(IAsyncStreamReader<AppendOpsRequest> requestStream, IServerStreamWriter<AppendOpsResponse> responseStream, ServerCallContext context)
    {
        var claims = context.Claims();
        using var slot = engine.OpenStream(claims, "AppendOps");
        using var stopReading = LinkShutdown(context);
        var inFlight = Channel.CreateBounded<Task<AppendOpsResponse>>(new BoundedChannelOptions(Options.Limits.MaxBatchesInFlightPerStream)
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
        var reading = ReadBatchesAsync(claims, requestStream, inFlight.Writer, context, stopReading.Token);
        try
        {
            // The loop ends when the reader stops (end of input, reset, fence or shutdown). Every batch already
            // queued still commits and is acked, also on shutdown, before the stream ends.
            await WriteAcksAsync(claims, inFlight.Reader, responseStream, context).ConfigureAwait(false);
            if (fenced) await engine.CheckAccessAsync(claims, Rights.Append, CancellationToken.None).ConfigureAwait(false);
            if (lifetime.ApplicationStopping.IsCancellationRequested)
                throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.ShuttingDown, "the server is shutting down; reconnect and resend unacked batches");
            context.CancellationToken.ThrowIfCancellationRequested();
        }
        finally
        {
            await stopReading.CancelAsync().ConfigureAwait(false);
            try { await reading.ConfigureAwait(false); } catch (Exception) { /* already reported through the channel */ }
            await fence.ConfigureAwait(false);
        }
    }

    /// <summary>Writes each ack in batch order; buffers it when the next one is ready too, so a burst costs one flush.</summary>
    private async Task WriteAcksAsync(LiveRefClaims claims, ChannelReader<Task<AppendOpsResponse>> inFlight,
        IServerStreamWriter<AppendOpsResponse> responses, ServerCallContext context)
    {
        while (await inFlight.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (inFlight.TryRead(out var pending))
            {
                var ack = await pending.ConfigureAwait(false);
                // With fault hooks set (tests, chaos) every ack is flushed: a fault on the next one must not hold it back.
                var more = Options.Faults is null && inFlight.TryPeek(out var next) && next.IsCompleted;
                if (Options.Faults?.BeforeAck is { } beforeAck
                    && await beforeAck(new ServerBatchContext(claims.ShareId, claims.CapabilityId, ack.BatchId, "")).ConfigureAwait(false) is var fault and not StreamFault.None)
                {
                    throw InjectFault(context, fault); // acks before this one are already written and flushed
                }
                responses.WriteOptions = more ? s_buffered : null;
                await responses.WriteAsync(ack).ConfigureAwait(false);
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

    private async Task ReadBatchesAsync(LiveRefClaims claims, IAsyncStreamReader<AppendOpsRequest> requests, ChannelWriter<Task<AppendOpsResponse>> inFlight,
        ServerCallContext context, CancellationToken stopReading)
    {
        try
        {
            while (await requests.MoveNext(stopReading).ConfigureAwait(false))
            {
                if (!await SubmitAsync(claims, requests.Current, inFlight, context, stopReading).ConfigureAwait(false)) return;
            }
        }
        catch (OperationCanceledException) when (stopReading.IsCancellationRequested)
        {
            // Stopped on purpose (fence, shutdown, writer failed) or the call was cancelled: the writer reports why.
        }
        catch (Exception e)
        {
            // Reported in order, after the acks of every batch before it.
            try { await inFlight.WriteAsync(Task.FromException<AppendOpsResponse>(e), stopReading).ConfigureAwait(false); }
            catch (OperationCanceledException) { /* the writer has already ended the call */ }
        }
        finally
        {
            inFlight.TryComplete();
        }
    }

    /// <summary>Queues one batch (or its refusal) behind the earlier ones; false after a refusal: nothing after it is read.</summary>
    private async Task<bool> SubmitAsync(LiveRefClaims claims, AppendOpsRequest batch, ChannelWriter<Task<AppendOpsResponse>> inFlight,
        ServerCallContext context, CancellationToken stopReading)
    {
        Task<AppendOpsResponse> pending;
        try
        {
            if (Options.Faults?.OnBatchRead is { } onRead
                && await onRead(new ServerBatchContext(claims.ShareId, claims.CapabilityId, batch.BatchId, batch.ProducerId)).ConfigureAwait(false) is var fault and not StreamFault.None)
            {
                throw InjectFault(context, fault); // reported in order: earlier batches are still acked
            }

            // Once read, a batch is applied and acked even on shutdown: no token.
            pending = await engine.EnqueueAppendAsync(claims, batch, CancellationToken.None).ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            pending = Task.FromException<AppendOpsResponse>(e);
        }
        await inFlight.WriteAsync(pending, stopReading).ConfigureAwait(false);
        return !pending.IsFaulted;
    }
}
