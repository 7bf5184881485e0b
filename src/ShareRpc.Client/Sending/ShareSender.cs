using Grpc.Core;
using ShareRpc.Client.Outbox;
using ShareRpc.Client.Transport;
using Sharerpc.V1;

namespace ShareRpc.Client.Sending;

/// <summary>
/// Streams one share's outbox over AppendOps (docs/design.md, "Client: the durable outbox"): resends
/// every unacked batch from the oldest, byte-for-byte, then seals and sends new ones, keeping
/// up to MaxInFlightBatches unacked; records each ack in one transaction. On failure it
/// reconnects with jittered exponential backoff, redeeming again when the epoch moved; on a
/// permanent error (PERMISSION_DENIED, NOT_FOUND, ...) it stops and keeps every op. A refusal
/// that names one op sets that op aside instead (see ShareSender.Poison.cs); a damaged outbox stops
/// it with DATA_LOSS naming the file.
/// </summary>
internal sealed partial class ShareSender : IAsyncDisposable
{
    private readonly ShareRpcClient _client;
    private readonly ShareWriter _writer;
    private readonly SturdyRef _sturdyRef;
    private readonly Task<ProducerInfo> _producer;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _work = new(0, int.MaxValue);
    private readonly object _lock = new();
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTimeOffset _lastCompaction = DateTimeOffset.MinValue;
    private bool _compactionUnfinished;
    private readonly Task _loop;

    public ShareSender(ShareRpcClient client, ShareWriter writer, SturdyRef sturdyRef, Task<ProducerInfo> producer)
    {
        _client = client;
        _writer = writer;
        _sturdyRef = sturdyRef;
        _producer = producer;
        _loop = Task.Run(RunAsync);
    }

    public ShareRpcCallException? StopError { get; private set; }

    public string? LastError { get; private set; }

    private OutboxStore Outbox => _client.Outbox;

    private string ShareId => _sturdyRef.ShareId;

    public void NotifyWork()
    {
        if (_work.CurrentCount == 0)
        {
            _work.Release();
        }
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task progressed;
            lock (_lock)
            {
                progressed = _progress.Task;
            }

            if (StopError is { } stopped)
            {
                throw stopped;
            }

            if (await Outbox.IsDrainedAsync(ShareId).ConfigureAwait(false))
            {
                return;
            }

            // Woken by every ack and by a stop; the timeout only re-checks the store.
            try
            {
                await progressed.WaitAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void SignalProgress()
    {
        TaskCompletionSource done;
        lock (_lock)
        {
            done = _progress;
            _progress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        done.TrySetResult();
    }

    private async Task RunAsync()
    {
        var producer = await _producer.ConfigureAwait(false);
        var backoff = new Backoff(_client.Options);
        var redeem = false;
        var staleInARow = 0;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                // Nothing to send: wait for work before connecting (an idle writer holds no stream).
                if (await Outbox.IsDrainedAsync(ShareId).ConfigureAwait(false))
                {
                    await CompactIfDueAsync().ConfigureAwait(false);
                    await _work.WaitAsync(_stop.Token).ConfigureAwait(false);
                    continue;
                }

                var live = await _client.LiveRefs.GetAsync(_sturdyRef, redeem, _stop.Token).ConfigureAwait(false);
                redeem = false;
                var progressed = await StreamAsync(producer, live.LiveRef).ConfigureAwait(false);
                if (progressed)
                {
                    backoff.Reset();
                    staleInARow = 0;
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (ShareRpcCallException ex) when (ex.IsRedeemable && staleInARow++ < 3)
            {
                // The epoch moved (a revoke) or the live ref expired: redeem, go on at once.
                LastError = ex.Message;
                redeem = true;
                continue;
            }
            catch (ShareRpcCallException ex) when (ex.IsPermanent)
            {
                await StopAsync(ex).ConfigureAwait(false);
                return;
            }
            catch (PoisonRefusal refusal)
            {
                if (!await SetAsideAsync(refusal).ConfigureAwait(false))
                {
                    await StopAsync(refusal.Error).ConfigureAwait(false);
                    return;
                }

                // The ops behind it go on at once: the refusal was about one op, not the connection.
                continue;
            }
            catch (OutboxCorruptException ex)
            {
                // Nothing more can be sent safely from this file: stop, naming it (never hang or skip).
                await StopAsync(ShareRpcCallException.Local(StatusCode.DataLoss, ex.Message, ex)).ConfigureAwait(false);
                return;
            }
            catch (Exception ex)
            {
                LastError = ex is ShareRpcCallException s ? s.Message : ex.GetType().Name + ": " + ex.Message;
                if (ex is ShareRpcCallException { IsRedeemable: true })
                {
                    redeem = true;
                }
            }

            try
            {
                await backoff.WaitAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Drops acked ops past their retention while the share is idle: at most once a minute, slice by
    /// slice (docs/client.md, "Compaction"). It gives way as soon as new ops arrive or the writer is
    /// disposed, and picks up where it stopped at the next idle moment.
    /// </summary>
    private async Task CompactIfDueAsync()
    {
        var now = _client.Options.TimeProvider.GetUtcNow();
        if (!_compactionUnfinished && now - _lastCompaction < TimeSpan.FromMinutes(1))
        {
            return;
        }

        _lastCompaction = now;
        _compactionUnfinished = true;
        while (!_stop.IsCancellationRequested && _work.CurrentCount == 0)
        {
            if (await Outbox.CompactSliceAsync(ShareId, now).ConfigureAwait(false) == 0)
            {
                _compactionUnfinished = false;
                return;
            }
        }
    }

    private async Task StopAsync(ShareRpcCallException error)
    {
        StopError = error;
        LastError = error.Message;
        try
        {
            await Outbox.SetStoppedReasonAsync(ShareId, error.Message).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The in-memory error still surfaces through FlushAsync and the event.
        }

        _writer.FailAll(error);
        SignalProgress();
    }

    /// <summary>One AppendOps stream until it fails or the writer stops. True when an ack arrived.</summary>
    private async Task<bool> StreamAsync(ProducerInfo producer, string liveRef)
    {
        using var streamCts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        using var call = _client.InvokerFor(_sturdyRef.Address).AsyncDuplexStreamingCall(
            ShareRpcMethods.AppendOpsRaw,
            host: null,
            new CallOptions(ShareRpcClient.Bearer(liveRef), null, streamCts.Token));
        var inFlight = new Queue<SealedBatch>();

        // Batches acked on this stream, newest last (bounded): a second ack for one of them (the
        // batch reached the server twice) is answered DUPLICATE by the server and needs no replay.
        var ackedHere = new Queue<string>();
        var window = new SemaphoreSlim(_client.Options.MaxInFlightBatches, _client.Options.MaxInFlightBatches);
        var acked = 0;

        var reader = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    try
                    {
                        if (!await call.ResponseStream.MoveNext().ConfigureAwait(false))
                        {
                            break;
                        }
                    }
                    catch (RpcException ex) when (PoisonIn(ex, inFlight) is { } poison)
                    {
                        throw poison;
                    }

                    var response = call.ResponseStream.Current;
                    if (ackedHere.Contains(response.BatchId))
                    {
                        continue;
                    }

                    SealedBatch head;
                    lock (inFlight)
                    {
                        if (inFlight.Count == 0)
                        {
                            throw new InvalidOperationException($"Server acked batch {response.BatchId} that was not sent.");
                        }

                        head = inFlight.Peek();
                    }

                    // Acks come one per batch, in order (docs/design.md, "AppendOps semantics").
                    if (response.BatchId != head.BatchId)
                    {
                        throw new InvalidOperationException($"Ack for {response.BatchId} while {head.BatchId} was next.");
                    }

                    if (response.BatchStatus == BatchStatus.OutOfOrder)
                    {
                        // The server expects an earlier seq: end this stream and resend from the
                        // oldest unacked batch. If that is later than expected_seq, the server has
                        // lost ops it acked before: nothing here can repair that.
                        var oldest = await Outbox.GetUnackedBatchesAsync(ShareId, 0, 1).ConfigureAwait(false);
                        if (oldest.Count > 0 && oldest[0].WireFirstSeq > response.ExpectedSeq)
                        {
                            throw ShareRpcCallException.Local(StatusCode.DataLoss,
                                $"The server expects seq {response.ExpectedSeq}, but ops before {oldest[0].WireFirstSeq} were acked and compacted here.");
                        }

                        throw new OutOfOrderException(response.ExpectedSeq);
                    }

                    if (_client.Options.Faults?.BeforeRecordAck is { } beforeAck)
                    {
                        await beforeAck(response.BatchId).ConfigureAwait(false);
                    }

                    var outcomes = await Outbox.RecordAckAsync(ShareId, response).ConfigureAwait(false);
                    lock (inFlight)
                    {
                        inFlight.Dequeue();
                    }

                    ackedHere.Enqueue(head.BatchId);
                    if (ackedHere.Count > 4 * _client.Options.MaxInFlightBatches)
                    {
                        ackedHere.Dequeue();
                    }

                    _writer.RaiseAckedSeq(head.LastSeq);

                    foreach (var o in outcomes)
                    {
                        _writer.CompleteAck(o);
                    }

                    Interlocked.Increment(ref acked);
                    window.Release();
                    SignalProgress();
                }
            }
            finally
            {
                // However the response side ended, the writing side stops too.
                streamCts.Cancel();
            }
        });

        try
        {
            ulong lastSent = 0;
            while (true)
            {
                await window.WaitAsync(streamCts.Token).ConfigureAwait(false);

                // First every batch sealed before (a resend after a failure or a restart), then new ones.
                var next = (await Outbox.GetUnackedBatchesAsync(ShareId, lastSent + 1, 1).ConfigureAwait(false)).FirstOrDefault();
                if (next is null)
                {
                    bool idle;
                    lock (inFlight)
                    {
                        idle = inFlight.Count == 0;
                    }

                    if (idle && _client.Options.Linger > TimeSpan.Zero)
                    {
                        // Nothing in flight: give concurrent producers a moment to fill the batch.
                        await Task.Delay(_client.Options.Linger, _client.Options.TimeProvider, streamCts.Token).ConfigureAwait(false);
                    }

                    next = await Outbox.SealNextBatchAsync(ShareId).ConfigureAwait(false);
                }

                if (next is null)
                {
                    window.Release();
                    bool drained;
                    lock (inFlight)
                    {
                        drained = inFlight.Count == 0;
                    }

                    if (drained)
                    {
                        // All acked and nothing pending: close the stream; RunAsync waits for work.
                        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                        await reader.ConfigureAwait(false);
                        return acked > 0;
                    }

                    await Task.WhenAny(_work.WaitAsync(streamCts.Token), reader).ConfigureAwait(false);
                    continue;
                }

                if (_client.Options.Faults?.BeforeSend is { } beforeSend)
                {
                    await beforeSend(next.BatchId).ConfigureAwait(false);
                }

                lock (inFlight)
                {
                    inFlight.Enqueue(next);
                }

                await call.RequestStream.WriteAsync(next.RequestBytes, streamCts.Token).ConfigureAwait(false);
                lastSent = next.LastSeq;
            }
        }
        catch (Exception writeError) when (writeError is OperationCanceledException or RpcException or InvalidOperationException or IOException
            and not OutboxCorruptException)
        {
            if (_stop.IsCancellationRequested)
            {
                throw new OperationCanceledException(_stop.Token);
            }

            // A write that fails with IOException (the connection broke) does not end a Grpc.Net.Client call:
            // it would wait for a deadline the stream does not have. End it here so the reconnect path runs.
            var broken = writeError is IOException;
            if (broken)
            {
                await streamCts.CancelAsync().ConfigureAwait(false);
            }

            // Otherwise the response side holds the real cause (the status, or the bad ack).
            try
            {
                await reader.ConfigureAwait(false);
            }
            catch (RpcException ex) when (!(broken && ex.StatusCode == StatusCode.Cancelled))
            {
                throw ShareRpcCallException.From(ex);
            }
            catch (RpcException)
            {
                // Cancelled here, after the broken write: reported below as UNAVAILABLE.
            }

            if (writeError is RpcException rpc)
            {
                throw ShareRpcCallException.From(rpc);
            }

            throw ShareRpcCallException.Local(StatusCode.Unavailable, "The AppendOps stream broke: " + writeError.Message, writeError);
        }
    }

    private sealed class OutOfOrderException(ulong expectedSeq) : Exception($"Server expects seq {expectedSeq}: resending from the oldest unacked batch.");
}
