using System.Diagnostics;
using Grpc.Core;
using ShareRpc.Client.Diagnostics;
using ShareRpc.Client.Outbox;
using ShareRpc.Client.Transport;
using Sharerpc.V1;

namespace ShareRpc.Client.Sending;

/// <summary>
/// One AppendOps stream (docs/client.md, "Sender"): the writing side resends every unacked batch,
/// oldest first, then seals and sends new ones while the window allows; the reading side records
/// each ack in order and frees the window.
/// </summary>
internal sealed partial class ShareSender
{
    /// <summary>What both sides of one stream share.</summary>
    private sealed class StreamState(CancellationTokenSource cts, int window, Outage outage)
    {
        public CancellationTokenSource Cts { get; } = cts;

        /// <summary>Failed attempts before this stream: its first ack ends the outage.</summary>
        public Outage Outage { get; } = outage;

        /// <summary>Sent and not yet acked, oldest first (locked: both sides use it).</summary>
        public Queue<SealedBatch> InFlight { get; } = new();

        /// <summary>
        /// Batches acked on this stream, newest last (bounded): a second ack for one of them (the
        /// batch reached the server twice) is answered DUPLICATE by the server and needs no replay.
        /// </summary>
        public Queue<string> AckedHere { get; } = new();

        public SemaphoreSlim Window { get; } = new(window, window);

        public int Acked;

        /// <summary>The last batch sealed on this stream was full: more are waiting, so nothing lingers.</summary>
        public bool LastSealFull;

        public bool Idle
        {
            get
            {
                lock (InFlight)
                {
                    return InFlight.Count == 0;
                }
            }
        }
    }

    /// <summary>One AppendOps stream until it fails or the writer stops. True when an ack arrived.</summary>
    private async Task<bool> StreamAsync(ProducerInfo producer, string liveRef, Outage outage)
    {
        // The stream's span is the parent of grpc-dotnet's call span, whose traceparent header makes the
        // server's request span (and the apply spans under it) part of this trace.
        using var activity = ClientTracing.Source.StartActivity(ClientTracing.StreamSpan, ActivityKind.Client);
        activity?.SetTag("sharerpc.share.id", ShareId);
        activity?.SetTag("server.address", _sturdyRef.Host);
        activity?.SetTag("server.port", _sturdyRef.Port);
        using var streamCts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        using var call = _client.InvokerFor(_sturdyRef.Address).AsyncDuplexStreamingCall(
            ShareRpcMethods.AppendOpsRaw,
            host: null,
            new CallOptions(ShareRpcClient.Bearer(liveRef), null, streamCts.Token));
        ClientLog.Connected(_client.Logger, _sturdyRef.Address, ShareId);
        var state = new StreamState(streamCts, _client.Options.MaxInFlightBatches, outage);
        var reader = Task.Run(() => ReadAcksAsync(call, state));
        try
        {
            return await WriteBatchesAsync(call, state, reader).ConfigureAwait(false);
        }
        catch (Exception writeError) when (writeError is OperationCanceledException or RpcException or InvalidOperationException or IOException
            and not OutboxCorruptException)
        {
            var failure = await StreamFailureAsync(writeError, state, reader).ConfigureAwait(false);
            activity?.SetStatus(ActivityStatusCode.Error, failure.Message);
            throw failure;
        }
        finally
        {
            activity?.SetTag("sharerpc.batches.acked", state.Acked);
        }
    }

    /// <summary>
    /// Sends batches until the stream fails: unacked ones first, then newly sealed ones. Closes the
    /// stream once everything is acked and nothing waits. On a damaged outbox it seals nothing more,
    /// lets the batches in flight be acked, then throws the damage.
    /// </summary>
    private async Task<bool> WriteBatchesAsync(AsyncDuplexStreamingCall<byte[], AppendOpsResponse> call, StreamState state, Task reader)
    {
        ulong lastSent = 0;
        OutboxCorruptException? damage = null;
        var idleWaited = false;
        while (true)
        {
            await state.Window.WaitAsync(state.Cts.Token).ConfigureAwait(false);
            SealedBatch? next;
            try
            {
                next = await NextBatchAsync(state, lastSent, sealNew: damage is null).ConfigureAwait(false);
            }
            catch (OutboxCorruptException ex)
            {
                // Nothing more is sealed; the batches already in flight (whole, checked) are still acked.
                damage = ex;
                next = null;
            }

            if (next is null)
            {
                state.Window.Release();
                // The progress signal is taken before the window is looked at: an ack in between still wakes the wait below.
                Task progressed;
                lock (_lock)
                {
                    progressed = _progress.Task;
                }

                if (state.Idle && damage is null && !idleWaited && !reader.IsCompleted)
                {
                    // All acked and nothing pending: keep the stream a moment for the next op (measured:
                    // a stream closed between two ops at 1k ops/s cost the next op a new one).
                    idleWaited = true;
                    await WaitForWorkAsync(_client.Options.IdleStreamTimeout, state, reader).ConfigureAwait(false);
                    continue;
                }

                if (state.Idle)
                {
                    // Still idle after that: close the stream; RunAsync waits for work (or stops on damage).
                    await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                    await reader.ConfigureAwait(false);
                    return damage is null ? state.Acked > 0 : throw damage;
                }

                await Task.WhenAny(damage is null ? _work.WaitAsync(state.Cts.Token) : progressed, reader).ConfigureAwait(false);
                continue;
            }

            if (_client.Options.Faults?.BeforeSend is { } beforeSend)
            {
                await beforeSend(next.BatchId).ConfigureAwait(false);
            }

            lock (state.InFlight)
            {
                state.InFlight.Enqueue(next);
            }

            await call.RequestStream.WriteAsync(next.RequestBytes, state.Cts.Token).ConfigureAwait(false);
            lastSent = next.LastSeq;
            idleWaited = false;
        }
    }

    /// <summary>Waits until work is signalled, the stream ends, or <paramref name="wait"/> passes (on the client's clock).</summary>
    private async Task WaitForWorkAsync(TimeSpan wait, StreamState state, Task reader)
    {
        if (wait <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new CancellationTokenSource(wait, _client.Options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timer.Token, state.Cts.Token);
        try
        {
            await Task.WhenAny(_work.WaitAsync(linked.Token), reader).ConfigureAwait(false);
        }
        finally
        {
            // An abandoned wait must not take a later signal: cancel it before leaving.
            await linked.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The next batch to send: the first unacked one after <paramref name="lastSent"/> (a resend), else a newly sealed one.</summary>
    private async Task<SealedBatch?> NextBatchAsync(StreamState state, ulong lastSent, bool sealNew)
    {
        var next = (await Outbox.GetUnackedBatchesAsync(ShareId, lastSent + 1, 1).ConfigureAwait(false)).FirstOrDefault();
        if (next is not null || !sealNew)
        {
            return next;
        }

        if (!state.LastSealFull)
        {
            await LingerAsync(state).ConfigureAwait(false);
        }

        var batch = await Outbox.SealNextBatchAsync(ShareId).ConfigureAwait(false);
        // A full batch means a backlog (a replay, a bulk enqueue): the next one is sealed at once.
        // Nothing to seal means no backlog: the next op may linger again.
        state.LastSealFull = batch is not null
            && (batch.OpCount >= _client.Options.Outbox.MaxBatchOps || batch.RequestBytes.Length >= _client.Options.Outbox.MaxBatchBytes / 2);
        if (batch is not null)
        {
            TookUnsealed(batch.OpCount);
        }

        return batch;
    }

    /// <summary>Reads acks until the stream ends; however it ends, the writing side stops too.</summary>
    private async Task ReadAcksAsync(AsyncDuplexStreamingCall<byte[], AppendOpsResponse> call, StreamState state)
    {
        try
        {
            while (true)
            {
                try
                {
                    if (!await call.ResponseStream.MoveNext().ConfigureAwait(false))
                    {
                        return;
                    }
                }
                catch (RpcException ex) when (PoisonIn(ex, state.InFlight) is { } poison)
                {
                    throw poison;
                }

                await OnResponseAsync(call.ResponseStream.Current, state).ConfigureAwait(false);
            }
        }
        finally
        {
            await state.Cts.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One response: the ack of the batch at the head of the window, recorded; or OUT_OF_ORDER, which ends the stream.</summary>
    private async Task OnResponseAsync(AppendOpsResponse response, StreamState state)
    {
        if (state.AckedHere.Contains(response.BatchId))
        {
            return;
        }

        SealedBatch head;
        lock (state.InFlight)
        {
            head = state.InFlight.Count > 0 ? state.InFlight.Peek() : throw new InvalidOperationException($"Server acked batch {response.BatchId} that was not sent.");
        }

        // Acks come one per batch, in order (docs/design.md, "AppendOps semantics").
        if (response.BatchId != head.BatchId)
        {
            throw new InvalidOperationException($"Ack for {response.BatchId} while {head.BatchId} was next.");
        }

        if (response.BatchStatus == BatchStatus.OutOfOrder)
        {
            throw await OutOfOrderAsync(response).ConfigureAwait(false);
        }

        if (_client.Options.Faults?.BeforeRecordAck is { } beforeAck)
        {
            await beforeAck(response.BatchId).ConfigureAwait(false);
        }

        var outcomes = await Outbox.RecordAckAsync(ShareId, response).ConfigureAwait(false);
        lock (state.InFlight)
        {
            state.InFlight.Dequeue();
        }

        state.AckedHere.Enqueue(head.BatchId);
        if (state.AckedHere.Count > 4 * _client.Options.MaxInFlightBatches)
        {
            state.AckedHere.Dequeue();
        }

        _writer.RaiseAckedSeq(head.LastSeq);
        RecordAck(head, outcomes, state.Outage);
        foreach (var o in outcomes)
        {
            _writer.CompleteAck(o);
        }

        Interlocked.Increment(ref state.Acked);
        state.Window.Release();
        SignalProgress();
    }

    /// <summary>The ack's metrics (each op's enqueue-to-ack time, outcomes) and, first after failures, the Reconnected line.</summary>
    private void RecordAck(SealedBatch batch, IReadOnlyList<OpOutcome> outcomes, Outage outage)
    {
        int applied = 0, duplicates = 0, rejected = 0;
        foreach (var o in outcomes)
        {
            switch (o.Status)
            {
                case OpStatus.Applied: applied++; break;
                case OpStatus.Duplicate: duplicates++; break;
                case OpStatus.Rejected: rejected++; break;
            }
        }

        var clock = _client.Options.TimeProvider;
        _client.Metrics.BatchAcked(batch.EnqueuedAtMs, clock.GetUtcNow(), applied, duplicates, rejected);
        if (outage.Failures > 0)
        {
            ClientLog.Reconnected(_client.Logger, _sturdyRef.Address, ShareId, outage.Failures, clock.GetElapsedTime(outage.Since));
            outage.Reset();
        }
    }

    /// <summary>
    /// The server expects an earlier seq: end this stream and resend from the oldest unacked batch.
    /// If that is later than expected_seq, the server has lost ops it acked before: nothing here
    /// can repair that (DATA_LOSS; the sender stops).
    /// </summary>
    private async Task<Exception> OutOfOrderAsync(AppendOpsResponse response)
    {
        var oldest = await Outbox.GetUnackedBatchesAsync(ShareId, 0, 1).ConfigureAwait(false);
        return oldest.Count > 0 && oldest[0].WireFirstSeq > response.ExpectedSeq
            ? ShareRpcCallException.Local(StatusCode.DataLoss,
                $"The server expects seq {response.ExpectedSeq}, but ops before {oldest[0].WireFirstSeq} were acked and compacted here.")
            : new OutOfOrderException(response.ExpectedSeq);
    }

    /// <summary>Why a stream failed, as the exception RunAsync acts on: the response side holds the real cause (the status, or the bad ack).</summary>
    private async Task<Exception> StreamFailureAsync(Exception writeError, StreamState state, Task reader)
    {
        if (_stop.IsCancellationRequested)
        {
            return new OperationCanceledException(_stop.Token);
        }

        // A write that fails with IOException (the connection broke) does not end a Grpc.Net.Client call:
        // it would wait for a deadline the stream does not have. End it here so the reconnect path runs.
        var broken = writeError is IOException;
        if (broken)
        {
            await state.Cts.CancelAsync().ConfigureAwait(false);
        }

        try
        {
            await reader.ConfigureAwait(false);
        }
        catch (RpcException ex) when (!(broken && ex.StatusCode == StatusCode.Cancelled))
        {
            return ShareRpcCallException.From(ex);
        }
        catch (RpcException)
        {
            // Cancelled here, after the broken write: reported below as UNAVAILABLE.
        }

        return writeError is RpcException rpc
            ? ShareRpcCallException.From(rpc)
            : ShareRpcCallException.Local(StatusCode.Unavailable, "The AppendOps stream broke: " + writeError.Message, writeError);
    }
}
