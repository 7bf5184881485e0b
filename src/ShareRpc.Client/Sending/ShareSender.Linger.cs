using Sharerpc.V1;

namespace ShareRpc.Client.Sending;

/// <summary>
/// The lingering sender (docs/client.md, "Sender"; issue 14). While batches are in flight, an op
/// that becomes durable would otherwise be sealed at once, alone: a sequential producer's ops then
/// travel one or two per batch, and every batch costs a seal and an ack commit in the outbox and a
/// commit on the server. Like Kafka's <c>linger.ms</c>, the sender waits up to
/// <see cref="ShareRpcClientOptions.Linger"/> for more ops before sealing — but only while something
/// is in flight: with nothing in flight an op is sent at once (no added latency when idle), and the
/// wait ends early when the last batch in flight is acked (the link is idle again) or a full batch
/// is waiting.
/// </summary>
internal sealed partial class ShareSender
{
    private long _unsealedOps;
    private long _unsealedBytes;
    private TaskCompletionSource _batchFull = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>An op was made durable: counted for the linger, and the sender woken.</summary>
    public void NotifyEnqueued(Op op)
    {
        if (_client.Options.Linger > TimeSpan.Zero)
        {
            CountUnsealed(1, op.CalculateSize());
        }

        NotifyWork();
    }

    /// <summary>
    /// Ops were made durable in one commit: counted for the linger, and the sender woken. Sizing an op
    /// is a pass over it, so it is done only when a linger can use the count.
    /// </summary>
    public void NotifyEnqueued(IReadOnlyList<Op> ops)
    {
        if (_client.Options.Linger > TimeSpan.Zero)
        {
            long bytes = 0;
            foreach (var op in ops)
            {
                bytes += op.CalculateSize();
            }

            CountUnsealed(ops.Count, bytes);
        }

        NotifyWork();
    }

    /// <summary>Counts ops made durable since the last seal; wakes a lingering sender once they fill a batch.</summary>
    private void CountUnsealed(int ops, long bytes)
    {
        var count = Interlocked.Add(ref _unsealedOps, ops);
        var size = Interlocked.Add(ref _unsealedBytes, bytes);
        if (count >= _client.Options.Outbox.MaxBatchOps || size >= _client.Options.Outbox.MaxBatchBytes)
        {
            TaskCompletionSource full;
            lock (_lock)
            {
                full = _batchFull;
            }

            full.TrySetResult();
        }
    }

    /// <summary>A batch took <paramref name="ops"/> ops: the counters restart (they are a hint, never below zero).</summary>
    private void TookUnsealed(int ops)
    {
        if (Interlocked.Add(ref _unsealedOps, -ops) <= 0)
        {
            Interlocked.Exchange(ref _unsealedOps, 0);
            Interlocked.Exchange(ref _unsealedBytes, 0);
        }

        lock (_lock)
        {
            if (_batchFull.Task.IsCompleted)
            {
                _batchFull = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    private bool UnsealedFillABatch() =>
        Volatile.Read(ref _unsealedOps) >= _client.Options.Outbox.MaxBatchOps
        || Volatile.Read(ref _unsealedBytes) >= _client.Options.Outbox.MaxBatchBytes;

    /// <summary>Waits until Linger has passed, nothing is in flight any more, or a full batch is waiting — whichever comes first.</summary>
    private async Task LingerAsync(StreamState state)
    {
        // Nothing new to seal: lingering would only wait for the acks, and a stream found idle with
        // nothing to send is closed — the next op would pay for a new stream (measured: p99 at 1k
        // ops/s 8 → 16-23 ms before this check). The counter is a hint (an op can be sealed before
        // its enqueue is counted), so the outbox has the last word.
        var options = _client.Options;
        if (options.Linger <= TimeSpan.Zero || state.Idle || Volatile.Read(ref _unsealedOps) == 0 || UnsealedFillABatch()
            || await Outbox.CountUnsealedAsync(ShareId).ConfigureAwait(false) == 0)
        {
            return;
        }

        using var timer = new CancellationTokenSource(options.Linger, options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timer.Token, state.Cts.Token);
        try
        {
            while (true)
            {
                Task progressed, full;
                lock (_lock)
                {
                    progressed = _progress.Task;
                    full = _batchFull.Task;
                }

                // Looked at after taking the signals: an ack or a full batch in between still ends the wait.
                if (state.Idle || UnsealedFillABatch())
                {
                    return;
                }

                await Task.WhenAny(progressed, full).WaitAsync(linked.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (timer.IsCancellationRequested && !state.Cts.IsCancellationRequested)
        {
            // Linger elapsed: seal what is there.
        }
    }
}
