namespace ShareRpc.Server.Subscribe;

/// <summary>
/// Wakes subscribers when a share's head or epoch changes. It carries no ops: a woken
/// subscriber reads what it needs from storage, so a slow subscriber never holds memory
/// or blocks a writer. A share has a signal only while something here watches it (a Subscribe
/// stream, an AppendOps stream waiting for the fence): memory follows the open streams, not the
/// number of shares — which matters when a shared database's change feed reports every commit of
/// every server (<see cref="Storage.IShareChangeFeed"/>).
/// </summary>
internal sealed class ShareNotifier
{
    private readonly Dictionary<string, ShareSignal> _signals = new(StringComparer.Ordinal);

    /// <summary>Shares watched now (for tests and metrics).</summary>
    public int WatchedShares
    {
        get { lock (_signals) return _signals.Count; }
    }

    /// <summary>The share's signal, kept until <see cref="Unwatch"/>: take it BEFORE reading storage.</summary>
    public ShareSignal Watch(string shareId)
    {
        lock (_signals)
        {
            if (!_signals.TryGetValue(shareId, out var signal)) _signals[shareId] = signal = new ShareSignal();
            signal.Watchers++;
            return signal;
        }
    }

    /// <summary>Ends one <see cref="Watch"/>; the last one removes the signal.</summary>
    public void Unwatch(string shareId, ShareSignal signal)
    {
        lock (_signals)
        {
            if (--signal.Watchers == 0 && _signals.TryGetValue(shareId, out var current) && ReferenceEquals(current, signal)) _signals.Remove(shareId);
        }
    }

    /// <summary>The signal of a watched share, or null.</summary>
    public ShareSignal? Find(string shareId)
    {
        lock (_signals) return _signals.GetValueOrDefault(shareId);
    }

    /// <summary>Records a new head (and epoch, if higher) and wakes every waiter; nothing to do when nobody watches.</summary>
    public void Publish(string shareId, ulong cursor, ulong epoch) => Find(shareId)?.Publish(cursor, epoch);

    /// <summary>Wakes every waiter of every share (they re-read storage): a change feed reconnected and may have missed some.</summary>
    public void PublishAll()
    {
        ShareSignal[] all;
        lock (_signals) all = [.. _signals.Values];
        foreach (var signal in all) signal.Publish(0, 0);
    }
}

internal sealed class ShareSignal
{
    private readonly object _gate = new();
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _epoch;
    private ulong _cursor;
    private int _subscribers;

    /// <summary>Open <see cref="ShareNotifier.Watch"/>es (guarded by the notifier's lock).</summary>
    internal int Watchers { get; set; }

    /// <summary>Completes at the next <see cref="Publish"/>: take it BEFORE reading storage, then await it.</summary>
    public Task NextChange
    {
        get { lock (_gate) return _next.Task; }
    }

    /// <summary>The highest epoch known to this process (0 = not yet known).</summary>
    public ulong Epoch => Interlocked.Read(ref _epoch);

    public ulong Cursor => Interlocked.Read(ref _cursor);

    public int Subscribers => Volatile.Read(ref _subscribers);

    public void Publish(ulong cursor, ulong epoch)
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            if (epoch > _epoch) Interlocked.Exchange(ref _epoch, epoch);
            if (cursor > _cursor) Interlocked.Exchange(ref _cursor, cursor);
            previous = _next;
            _next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        previous.TrySetResult();
    }

    /// <summary>Learns the epoch from storage without waking anyone.</summary>
    public void ObserveEpoch(ulong epoch)
    {
        lock (_gate)
            if (epoch > _epoch) Interlocked.Exchange(ref _epoch, epoch);
    }

    public bool TryAddSubscriber(int max)
    {
        if (Interlocked.Increment(ref _subscribers) <= max) return true;
        Interlocked.Decrement(ref _subscribers);
        return false;
    }

    public void RemoveSubscriber() => Interlocked.Decrement(ref _subscribers);
}
