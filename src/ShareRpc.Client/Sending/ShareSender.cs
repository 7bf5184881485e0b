using Grpc.Core;
using ShareRpc.Client.Diagnostics;
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
        // The loop outlives the call that opened the writer: it must not inherit that call's activity
        // (every stream would join the trace of whoever opened the writer first).
        using (ExecutionContext.SuppressFlow())
        {
            _loop = Task.Run(RunAsync);
        }
    }

    public ShareRpcCallException? StopError { get; private set; }

    public string? LastError { get; private set; }

    private IOutboxStore Outbox => _client.Outbox;

    private string ShareId => _sturdyRef.ShareId;

    /// <summary>Something may be waiting to be sent (an op enqueued, a set-aside op retried): wake the sender.</summary>
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
        await LogReplayAsync().ConfigureAwait(false);
        var backoff = new Backoff(_client.Options);
        var redeem = false;
        string? redeemReason = null;
        var staleInARow = 0;
        var outage = new Outage();
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
                if (redeem)
                {
                    ClientLog.Redeemed(_client.Logger, ShareId, redeemReason ?? "UNAUTHENTICATED", ClientLog.Redacted(_sturdyRef), live.Epoch);
                }

                redeem = false;
                var progressed = await StreamAsync(producer, live.LiveRef, outage).ConfigureAwait(false);
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
                redeemReason = $"{ex.StatusCode} {ex.Reason}";
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
                if (ex is ShareRpcCallException { IsRedeemable: true } r)
                {
                    redeem = true;
                    redeemReason = $"{r.StatusCode} {r.Reason}";
                }
            }

            try
            {
                var wait = backoff.WaitAsync(_stop.Token, out var delay);
                outage.Failed(_client.Options.TimeProvider);
                _client.Metrics.Reconnect("append");
                ClientLog.Reconnecting(_client.Logger, _sturdyRef.Address, ShareId, LastError ?? "the stream ended", delay, outage.Failures);
                await wait.ConfigureAwait(false);
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
        var removed = 0;
        try
        {
            while (!_stop.IsCancellationRequested && _work.CurrentCount == 0)
            {
                var slice = await Outbox.CompactSliceAsync(ShareId, now).ConfigureAwait(false);
                removed += slice;
                if (slice == 0)
                {
                    _compactionUnfinished = false;
                    return;
                }
            }
        }
        finally
        {
            if (removed > 0)
            {
                ClientLog.Compacted(_client.Logger, Outbox.Path, ShareId, removed, _client.Options.Outbox.AckedRetention);
            }
        }
    }

    private async Task StopAsync(ShareRpcCallException error)
    {
        StopError = error;
        LastError = error.Message;
        _client.Metrics.SenderStopped(error.StatusCode.ToString());
        ClientLog.SenderStopped(_client.Logger, ShareId, _sturdyRef.Address, error.StatusCode.ToString(), error.Reason ?? "", error.Status.Detail);
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

    /// <summary>Ops an earlier run left unacked are replayed first: said once, with how many.</summary>
    private async Task LogReplayAsync()
    {
        try
        {
            var status = await Outbox.GetStatusAsync(ShareId).ConfigureAwait(false);
            if (status.PendingOps > 0)
            {
                ClientLog.Replaying(_client.Logger, Outbox.Path, ShareId, status.PendingOps, status.SealedBatches);
            }
        }
        catch (OutboxCorruptException)
        {
            // The stream's first read reports the damage and stops the sender.
        }
    }

    /// <summary>Failed attempts since the last ack, and since when: for the Reconnected line.</summary>
    private sealed class Outage
    {
        public int Failures { get; private set; }

        public long Since { get; private set; }

        public void Failed(TimeProvider clock)
        {
            if (Failures++ == 0)
            {
                Since = clock.GetTimestamp();
            }
        }

        public void Reset() => Failures = 0;
    }

    private sealed class OutOfOrderException(ulong expectedSeq) : Exception($"Server expects seq {expectedSeq}: resending from the oldest unacked batch.");
}
