using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ShareRpc.Protocol.Refs;
using ShareRpc.Protocol.V1;
using ShareRpc.Wire;
using ShareRpc.Protocol;

namespace ShareRpc.Server.Service;

/// <summary>
/// AppendOps: the client streams batches without waiting; each is validated and queued to the
/// group committer as it arrives (up to MaxBatchesInFlightPerStream un-acked), and the acks go
/// back strictly in batch order, coalesced into one flush when several are ready. A failing batch
/// ends the stream with its status after every earlier batch has been acked. A revoke that moves
/// the share's epoch ends the stream (PERMISSION_DENIED revoked / UNAUTHENTICATED epoch-stale)
/// even when it is idle.
/// </summary>
internal sealed class AppendOpsHandler(ShareEngine engine)
{
    public Task Handle(IAsyncStreamReader<AppendOpsRequest> requests, IServerStreamWriter<AppendOpsResponse> responses, ServerCallContext context) =>
        CallSupport.Guard(async () =>
        {
            var claims = CallSupport.Authenticate(engine, context);
            using var tracked = ShareEngine.TrackStream("AppendOps");
            var callCt = context.CancellationToken;
            var stopping = context.HttpContext.RequestServices?.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
            using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(callCt, stopping);
            var inFlight = Channel.CreateBounded<Task<AppendOpsResponse>>(new BoundedChannelOptions(engine.Options.Limits.MaxBatchesInFlightPerStream)
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
            var reading = ReadAsync(claims, requests, inFlight.Writer, context, stopReading.Token);
            try
            {
                // Acks use the wire's default write token (client gone, deadline), not the call token: on shutdown every
                // batch already queued still commits and is acked before the stream ends UNAVAILABLE.
                // The loop ends when the reader stops (end of input, reset, fence or shutdown).
                var buffered = false;
                while (await inFlight.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    while (inFlight.Reader.TryRead(out var pending))
                    {
                        if (!pending.IsCompleted && buffered)
                        {
                            await responses.FlushAsync().ConfigureAwait(false);
                            buffered = false;
                        }
                        var ack = await pending.ConfigureAwait(false);
                        if (engine.Options.Faults?.BeforeAck is { } beforeAck
                            && await beforeAck(new ServerBatchContext(claims.ShareId, claims.CapabilityId, ack.BatchId, "")).ConfigureAwait(false) is var fault and not StreamFault.None)
                        {
                            if (buffered) await responses.FlushAsync().ConfigureAwait(false); // acks before this one still go out
                            throw InjectFault(context, fault);
                        }
                        responses.WriteBuffered(ack);
                        buffered = true;
                    }
                    if (buffered)
                    {
                        await responses.FlushAsync().ConfigureAwait(false);
                        buffered = false;
                    }
                }
                if (fenced) await engine.CheckAccessAsync(claims, Rights.Append, CancellationToken.None).ConfigureAwait(false);
                if (stopping.IsCancellationRequested)
                    throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.ShuttingDown, "the server is shutting down; reconnect and resend unacked batches");
                callCt.ThrowIfCancellationRequested();
            }
            finally
            {
                await stopReading.CancelAsync().ConfigureAwait(false);
                try { await reading.ConfigureAwait(false); } catch (Exception) { /* already reported through the channel */ }
                await fence.ConfigureAwait(false);
            }
        });

    /// <summary>Applies an injected stream fault (ServerFaultHooks); returns the exception that ends the handler.</summary>
    private static OperationCanceledException InjectFault(ServerCallContext context, StreamFault fault)
    {
        if (fault == StreamFault.Reset && context.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResetFeature>() is { } reset)
            reset.Reset(0x8); // CANCEL
        else
            context.HttpContext.Abort();
        return new OperationCanceledException("injected fault: " + fault);
    }

    private async Task ReadAsync(LiveRefClaims claims, IAsyncStreamReader<AppendOpsRequest> requests, ChannelWriter<Task<AppendOpsResponse>> inFlight,
        ServerCallContext context, CancellationToken stopReading)
    {
        try
        {
            var buffered = requests as IBufferedStreamReader<AppendOpsRequest>;
            while (await requests.MoveNext(stopReading).ConfigureAwait(false))
            {
                if (!await SubmitAsync(requests.Current).ConfigureAwait(false)) return;
                while (buffered is not null && buffered.TryMoveNextBuffered())
                    if (!await SubmitAsync(buffered.Current).ConfigureAwait(false)) return;
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

        // False after a refused batch: nothing after it is read.
        async Task<bool> SubmitAsync(AppendOpsRequest batch)
        {
            Task<AppendOpsResponse> pending;
            try
            {
                if (engine.Options.Faults?.OnBatchRead is { } onRead
                    && await onRead(new ServerBatchContext(claims.ShareId, claims.CapabilityId, batch.BatchId, batch.ProducerId)).ConfigureAwait(false) is var fault and not StreamFault.None)
                {
                    throw InjectFault(context, fault); // reported in order: earlier batches are still acked
                }

                pending = await engine.EnqueueAppendAsync(claims, batch, CancellationToken.None).ConfigureAwait(false); // once read, a batch is applied and acked even on shutdown
            }
            catch (ShareRpcException e)
            {
                pending = Task.FromException<AppendOpsResponse>(e);
            }
            await inFlight.WriteAsync(pending, stopReading).ConfigureAwait(false);
            return !pending.IsFaulted;
        }
    }
}
