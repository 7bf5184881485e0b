using System.Collections.Concurrent;
using Google.Protobuf;
using ShareRpc.Client.Diagnostics;
using ShareRpc.Client.Outbox;
using ShareRpc.Client.Sending;
using Sharerpc.V1;

namespace ShareRpc.Client;

/// <summary>
/// An op durable in the outbox: its id, its seq, and a task completed by the server's ack. The
/// task is made when first asked for, so a writer holds no per-op state for ops nobody awaits
/// (memory does not grow with the backlog).
/// </summary>
public sealed class PendingOp
{
    private readonly ShareWriter _writer;
    private Task<OpOutcome>? _acked;

    internal PendingOp(ShareWriter writer, string opId, ulong seq)
    {
        _writer = writer;
        OpId = opId;
        Seq = seq;
    }

    public string OpId { get; }

    public ulong Seq { get; }

    /// <summary>
    /// Completes with the server's outcome (APPLIED, DUPLICATE with the first cursor, or REJECTED
    /// with its reason); faults with the stop error if the sender stops for good first.
    /// </summary>
    public Task<OpOutcome> Acked => LazyInitializer.EnsureInitialized(ref _acked, () => _writer.WaitForAckAsync(OpId, Seq));

    public override string ToString() => $"{OpId} (seq {Seq})";
}

/// <summary>Progress of one share's writer.</summary>
public sealed record WriterProgress(long PendingOps, TimeSpan? OldestPendingAge, string? LastError, bool Stopped);

/// <summary>
/// Writes ops to one share: each call returns once the op is durable in the outbox; a background
/// sender streams sealed batches (pipelined, bounded window) and replays them after any failure.
/// </summary>
public sealed class ShareWriter : IAsyncDisposable
{
    private readonly ShareRpcClient _client;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<OpOutcome>> _acks = new(StringComparer.Ordinal);
    private readonly Task<ProducerInfo> _producer;
    private readonly ShareSender _sender;
    private readonly IDisposable _gauge;
    private ulong _ackedSeq;
    private int _setAsides;

    internal ShareWriter(ShareRpcClient client, SturdyRef sturdyRef)
    {
        _client = client;
        SturdyRef = sturdyRef;
        _producer = client.Outbox.EnsureProducerAsync(sturdyRef.ShareId, sturdyRef.ToString());
        _ = _producer.ContinueWith(t => RaiseAckedSeq(t.Result.AckedSeq), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        _sender = new ShareSender(client, this, sturdyRef, _producer);
        _gauge = client.Metrics.Track(new OutboxGauge(client.Outbox, sturdyRef.ShareId, client.Options.TimeProvider));
    }

    /// <summary>Raised once when the sender stops for good (PERMISSION_DENIED, NOT_FOUND, ...); the ops stay in the outbox.</summary>
    public event EventHandler<ShareRpcCallException>? Stopped;

    /// <summary>
    /// Raised when the server refused an op at call level and the sender set it aside to let the
    /// ops behind it through (docs/client.md, "Poison ops"). The op stays in the outbox until
    /// <see cref="DropPoisonOpAsync"/> or <see cref="RetryPoisonOpAsync"/>; its <c>Acked</c> task faults
    /// with the refusal.
    /// </summary>
    public event EventHandler<PoisonOp>? PoisonOpSetAside;

    public SturdyRef SturdyRef { get; }

    public string ShareId => SturdyRef.ShareId;

    /// <summary>Why the sender stopped, if it did.</summary>
    public ShareRpcCallException? StopError => _sender.StopError;

    public Task<PendingOp> PutAsync(string collection, string key, ReadOnlyMemory<byte> value, string contentType = "", ulong? expectedVersion = null, IEnumerable<string>? dependsOn = null)
    {
        var put = new Put { Collection = collection, Key = key, Value = ByteString.CopyFrom(value.Span), ContentType = contentType };
        if (expectedVersion is { } v)
        {
            put.ExpectedVersion = v;
        }

        return EnqueueAsync(new Op { Put = put }, dependsOn);
    }

    public Task<PendingOp> DeleteAsync(string collection, string key, ulong? expectedVersion = null, IEnumerable<string>? dependsOn = null)
    {
        var delete = new Delete { Collection = collection, Key = key };
        if (expectedVersion is { } v)
        {
            delete.ExpectedVersion = v;
        }

        return EnqueueAsync(new Op { Delete = delete }, dependsOn);
    }

    public Task<PendingOp> AppendAsync(string collection, ReadOnlyMemory<byte> value, string contentType = "", IEnumerable<string>? dependsOn = null) =>
        EnqueueAsync(new Op { Append = new Append { Collection = collection, Value = ByteString.CopyFrom(value.Span), ContentType = contentType } }, dependsOn);

    /// <summary>
    /// Enqueues a prepared op (its op_id is made here, UUIDv7, unless set; seq is always assigned
    /// here). An op the server would refuse (see <see cref="ShareRpcClientOptions.Limits"/>) throws
    /// <see cref="InvalidOpException"/> and nothing of it is made durable.
    /// </summary>
    public async Task<PendingOp> EnqueueAsync(Op op, IEnumerable<string>? dependsOn = null)
    {
        ArgumentNullException.ThrowIfNull(op);
        op = op.Clone();
        if (dependsOn is not null)
        {
            op.DependsOn.AddRange(dependsOn);
        }

        OpValidator.Validate(op, _client.Options.Limits);
        // The op carries the enqueue span's trace context inside its durable bytes (docs/design.md, "Diagnostics").
        using var activity = ClientTracing.StartEnqueue(ShareId, 1);
        ClientTracing.Stamp(op, activity);
        await _producer.ConfigureAwait(false);
        var queued = await _client.Outbox.EnqueueAsync(ShareId, op).ConfigureAwait(false);
        activity?.SetTag("sharerpc.op.id", queued.OpId);
        activity?.SetTag("sharerpc.op.seq", queued.Seq);
        _client.Metrics.OpsEnqueued(1);
        _sender.NotifyEnqueued(op);
        return new PendingOp(this, queued.OpId, queued.Seq);
    }

    /// <summary>
    /// Makes every op durable in one commit (one fsync), in order, at consecutive seqs: the way to
    /// enqueue many ops at once (issue 14; the CLI's append uses the same path). Each op is validated
    /// first, as <see cref="EnqueueAsync"/> does; one that the server would refuse throws
    /// <see cref="InvalidOpException"/> (its <c>Field</c> prefixed by its index) and none is durable.
    /// An op whose id is already in this outbox is not enqueued twice: its entry is the earlier op
    /// (so a call retried after its result was lost enqueues nothing twice). An op id set aside here
    /// as a poison op throws <see cref="ArgumentException"/>, and none is durable. The ops given are
    /// not changed. At most <see cref="Outbox.OutboxOptions.MaxOpsPerCommit"/> ops per call.
    /// </summary>
    public async Task<IReadOnlyList<PendingOp>> EnqueueManyAsync(IReadOnlyList<Op> ops)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (ops.Count > _client.Options.Outbox.MaxOpsPerCommit)
        {
            throw new ArgumentOutOfRangeException(nameof(ops), ops.Count, $"At most Outbox.MaxOpsPerCommit = {_client.Options.Outbox.MaxOpsPerCommit} ops per call.");
        }

        var copies = new Op[ops.Count];
        for (var i = 0; i < ops.Count; i++)
        {
            copies[i] = (ops[i] ?? throw new ArgumentNullException(nameof(ops), $"ops[{i}] is null.")).Clone();
            try
            {
                OpValidator.Validate(copies[i], _client.Options.Limits);
            }
            catch (InvalidOpException ex)
            {
                throw new InvalidOpException($"ops[{i}].{ex.Field}", ex.Problem);
            }
        }

        if (copies.Length == 0)
        {
            return [];
        }

        // One producer span for the whole call: every op carries its context in its durable bytes (docs/design.md, "Diagnostics").
        using var activity = ClientTracing.StartEnqueue(ShareId, copies.Length);
        foreach (var op in copies)
        {
            ClientTracing.Stamp(op, activity);
        }

        await _producer.ConfigureAwait(false);
        var results = await _client.Outbox.EnqueueBulkAsync(ShareId, copies, refuseSetAside: true).ConfigureAwait(false);
        _client.Metrics.OpsEnqueued(copies.Length);
        _sender.NotifyEnqueued(copies);
        var pending = new PendingOp[copies.Length];
        for (var i = 0; i < copies.Length; i++)
        {
            pending[i] = new PendingOp(this, copies[i].OpId, results[i].Seq);
        }

        return pending;
    }

    /// <summary>
    /// Validates and makes <paramref name="ops"/> durable in one commit (the CLI's append): an op id
    /// already in the outbox is not enqueued twice but reported. Sets each new op's seq on the objects.
    /// </summary>
    internal async Task<BulkEnqueued[]> EnqueueBulkAsync(IReadOnlyList<Op> ops)
    {
        foreach (var op in ops)
        {
            OpValidator.Validate(op, _client.Options.Limits);
        }

        // One producer span for the whole bulk: every op carries its context.
        using var activity = ClientTracing.StartEnqueue(ShareId, ops.Count);
        foreach (var op in ops)
        {
            ClientTracing.Stamp(op, activity);
        }

        await _producer.ConfigureAwait(false);
        var results = await _client.Outbox.EnqueueBulkAsync(ShareId, ops).ConfigureAwait(false);
        _client.Metrics.OpsEnqueued(ops.Count);
        _sender.NotifyEnqueued(ops);
        return results;
    }

    /// <summary>The ops of this share the server refused at call level, set aside and waiting for a decision, oldest first.</summary>
    public Task<IReadOnlyList<PoisonOp>> GetPoisonOpsAsync() => _client.Outbox.GetPoisonOpsAsync(ShareId);

    /// <summary>Drops a poison op of this share for good: it is never sent. False when no op with this id is set aside.</summary>
    public async Task<bool> DropPoisonOpAsync(string opId)
    {
        ArgumentException.ThrowIfNullOrEmpty(opId);
        return await _client.Outbox.GetPoisonOpAsync(opId).ConfigureAwait(false) is { } poison && poison.ShareId == ShareId
            && await _client.Outbox.DropPoisonOpAsync(opId).ConfigureAwait(false);
    }

    /// <summary>
    /// Enqueues a poison op of this share again, with the same op id, at the end of the sequence
    /// (after every op enqueued so far): for when the server's limits now allow it. Null when no op
    /// with this id is set aside.
    /// </summary>
    public async Task<PendingOp?> RetryPoisonOpAsync(string opId)
    {
        ArgumentException.ThrowIfNullOrEmpty(opId);
        if (await _client.Outbox.GetPoisonOpAsync(opId).ConfigureAwait(false) is not { } poison || poison.ShareId != ShareId)
        {
            return null;
        }

        await _producer.ConfigureAwait(false);
        var queued = await _client.Outbox.RetryPoisonOpAsync(opId).ConfigureAwait(false);
        if (queued is null)
        {
            return null;
        }

        _sender.NotifyWork();
        return new PendingOp(this, queued.OpId, queued.Seq);
    }

    /// <summary>Waits until every op in the outbox for this share is acked, rejected or set aside; throws if the sender stopped.</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default) => _sender.FlushAsync(cancellationToken);

    public async Task<WriterProgress> GetProgressAsync()
    {
        var status = await _client.Outbox.GetStatusAsync(ShareId).ConfigureAwait(false);
        return new WriterProgress(
            status.PendingOps,
            status.OldestPendingEnqueuedAt is { } t ? _client.Options.TimeProvider.GetUtcNow() - t : null,
            _sender.LastError,
            _sender.StopError is not null);
    }

    public async ValueTask DisposeAsync()
    {
        _gauge.Dispose();
        await _sender.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Registers a waiter, then asks the outbox: an ack recorded before the waiter existed is not missed.</summary>
    internal async Task<OpOutcome> WaitForAckAsync(string opId, ulong seq)
    {
        var waiter = _acks.GetOrAdd(opId, _ => new TaskCompletionSource<OpOutcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (seq > Volatile.Read(ref _ackedSeq) && _sender.StopError is null && Volatile.Read(ref _setAsides) == 0)
        {
            // Not acked yet: the sender raises the watermark only after it has recorded an ack and
            // before it completes the waiters, so this waiter (registered first) will be completed.
            // (Once an op was set aside, the op asked for may be that one: the outbox says.)
            return await waiter.Task.ConfigureAwait(false);
        }

        if (await _client.Outbox.GetOutcomeAsync(opId).ConfigureAwait(false) is { } recorded)
        {
            _acks.TryRemove(opId, out _);
            waiter.TrySetResult(recorded);
        }
        else if (await _client.Outbox.GetPoisonOpAsync(opId).ConfigureAwait(false) is { } poison)
        {
            _acks.TryRemove(opId, out _);
            waiter.TrySetException(poison.ToException());
        }
        else if (await _client.Outbox.IsAckedAsync(ShareId, seq).ConfigureAwait(false))
        {
            // Acked so long ago that compaction removed its row (AckedRetention).
            _acks.TryRemove(opId, out _);
            waiter.TrySetResult(new OpOutcome(opId, OpStatus.Unspecified, 0, 0, RejectReason.Unspecified, "acked; the outcome was compacted away"));
        }
        else if (_sender.StopError is { } stopped)
        {
            _acks.TryRemove(opId, out _);
            waiter.TrySetException(stopped);
        }

        return await waiter.Task.ConfigureAwait(false);
    }

    /// <summary>Called by the sender after an ack is recorded and before its waiters are completed.</summary>
    internal void RaiseAckedSeq(ulong seq)
    {
        ulong current;
        while (seq > (current = Volatile.Read(ref _ackedSeq)) && Interlocked.CompareExchange(ref _ackedSeq, seq, current) != current)
        {
        }
    }

    internal void CompleteAck(OpOutcome outcome)
    {
        if (_acks.TryRemove(outcome.OpId, out var tcs))
        {
            tcs.TrySetResult(outcome);
        }
    }

    /// <summary>Called by the sender once an op is set aside: its waiter faults with the refusal, the application hears of it.</summary>
    internal void OnSetAside(PoisonOp poison)
    {
        // Counted before the waiter is failed: a waiter registering now either is failed here or
        // sees the count and asks the outbox.
        Interlocked.Increment(ref _setAsides);
        if (_acks.TryRemove(poison.OpId, out var tcs))
        {
            tcs.TrySetException(poison.ToException());
        }

        try
        {
            PoisonOpSetAside?.Invoke(this, poison);
        }
        catch (Exception ex)
        {
            // A handler's bug must not stop the sender.
            _client.Options.ErrorCallback?.Invoke(ex);
        }
    }

    internal void FailAll(ShareRpcCallException error)
    {
        foreach (var key in _acks.Keys)
        {
            if (_acks.TryRemove(key, out var tcs))
            {
                tcs.TrySetException(error);
            }
        }

        Stopped?.Invoke(this, error);
    }
}
