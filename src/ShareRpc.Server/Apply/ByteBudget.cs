namespace ShareRpc.Server.Apply;

/// <summary>
/// A budget of bytes that buffers take from and give back (docs/design.md, "Limits"): the write
/// queue, one AppendOps stream's in-flight window, the subscribers' read chunks. A taker that does
/// not fit waits — it does not allocate — so the code that reads from a peer stops reading and
/// HTTP/2 flow control stops the peer. Waiters are served first come, first served, so a large
/// request is not starved by a stream of small ones. A single request larger than the whole budget
/// is let through alone (when nothing else is held), so an oversized item cannot wedge the gate.
/// </summary>
internal sealed class ByteBudget
{
    private readonly object _gate = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly ByteBudget? _parent;
    private long _inUse;
    private long _peak;
    private int _waitingChildren;

    /// <param name="capacity">The limit, in bytes.</param>
    /// <param name="name">The limit's name.</param>
    /// <param name="parent">
    /// A budget that only counts (never gates) what this one and its siblings hold and wait for: the
    /// sum of every AppendOps stream's window, for tests and metrics.
    /// </param>
    public ByteBudget(long capacity, string name, ByteBudget? parent = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        Name = name;
        _parent = parent;
    }

    /// <summary>Bytes this budget lends at most (its limit).</summary>
    public long Capacity { get; }

    /// <summary>The limit's name, for messages and metrics.</summary>
    public string Name { get; }

    /// <summary>Bytes taken now.</summary>
    public long InUse
    {
        get { lock (_gate) return _inUse; }
    }

    /// <summary>The most bytes ever taken at once (what the tests assert a bound on).</summary>
    public long Peak
    {
        get { lock (_gate) return _peak; }
    }

    /// <summary>Takers waiting for room now (here, or in the budgets this one counts for).</summary>
    public int Waiting
    {
        get { lock (_gate) return _waiters.Count + _waitingChildren; }
    }

    /// <summary>Takes <paramref name="bytes"/>, waiting (first come, first served) until they fit.</summary>
    public ValueTask AcquireAsync(long bytes, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Waiter waiter;
        lock (_gate)
        {
            if (_waiters.Count == 0 && Fits(bytes))
            {
                Take(bytes);
                return ValueTask.CompletedTask;
            }
            ct.ThrowIfCancellationRequested();
            waiter = new Waiter(bytes);
            waiter.Node = _waiters.AddLast(waiter);
            _parent?.ChildWaiting(+1);
        }
        return new ValueTask(WaitAsync(waiter, ct));
    }

    /// <summary>Takes <paramref name="bytes"/> only if they fit now and nobody waits; never waits.</summary>
    public bool TryAcquire(long bytes)
    {
        lock (_gate)
        {
            if (_waiters.Count > 0 || !Fits(bytes)) return false;
            Take(bytes);
            return true;
        }
    }

    /// <summary>
    /// Takes <paramref name="bytes"/> now, even past the limit: only for what is already in memory and
    /// could not have been foreseen (a stored entry larger than today's limits allow).
    /// </summary>
    public void ForceAcquire(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        lock (_gate) Take(bytes);
    }

    /// <summary>Gives <paramref name="bytes"/> back and lets in the waiters that now fit, in order.</summary>
    public void Release(long bytes)
    {
        if (bytes <= 0) return;
        lock (_gate)
        {
            _inUse -= bytes;
            if (_inUse < 0) throw new InvalidOperationException($"{Name}: released more bytes than were taken");
            _parent?.Release(bytes); // before the waiters it admits are counted there (lock order: child, then parent)
            AdmitWaiters();
        }
    }

    private void ChildWaiting(int delta)
    {
        lock (_gate) _waitingChildren += delta;
    }

    private bool Fits(long bytes) => _inUse + bytes <= Capacity || _inUse == 0;

    private void Take(long bytes)
    {
        _inUse += bytes;
        if (_inUse > _peak) _peak = _inUse;
        _parent?.ForceAcquire(bytes); // lock order: child, then parent
    }

    private async Task WaitAsync(Waiter waiter, CancellationToken ct)
    {
        if (!ct.CanBeCanceled)
        {
            await waiter.Done.Task.ConfigureAwait(false);
            return;
        }
        using var registration = ct.Register(static state =>
        {
            var (budget, w) = ((ByteBudget, Waiter))state!;
            budget.Abandon(w);
        }, (this, waiter));
        await waiter.Done.Task.ConfigureAwait(false);
    }

    /// <summary>A cancelled waiter leaves the line (an admitted one keeps its bytes: its await completed first).</summary>
    private void Abandon(Waiter waiter)
    {
        lock (_gate)
        {
            if (waiter.Node is null) return; // already admitted
            _waiters.Remove(waiter.Node);
            waiter.Node = null;
            _parent?.ChildWaiting(-1);
            waiter.Done.TrySetCanceled();
            AdmitWaiters(); // the next waiter may fit now that this one left the head of the line
        }
    }

    /// <summary>Admits waiters from the head of the line while they fit (under the lock; continuations run asynchronously).</summary>
    private void AdmitWaiters()
    {
        while (_waiters.First is { } first && Fits(first.Value.Bytes))
        {
            _waiters.RemoveFirst();
            first.Value.Node = null;
            _parent?.ChildWaiting(-1);
            Take(first.Value.Bytes);
            first.Value.Done.TrySetResult();
        }
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;
        public LinkedListNode<Waiter>? Node { get; set; }
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
