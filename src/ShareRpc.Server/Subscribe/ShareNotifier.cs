using System.Collections.Concurrent;

namespace ShareRpc.Server.Subscribe;

/// <summary>
/// Wakes subscribers when a share's head or epoch changes. It carries no ops: a woken
/// subscriber reads what it needs from storage, so a slow subscriber never holds memory
/// or blocks a writer. (A PostgreSQL deployment feeds <see cref="Publish"/> from LISTEN/NOTIFY.)
/// </summary>
public sealed class ShareNotifier
{
    private readonly ConcurrentDictionary<string, ShareSignal> _signals = new(StringComparer.Ordinal);

    public ShareSignal Get(string shareId) => _signals.GetOrAdd(shareId, static _ => new ShareSignal());

    /// <summary>Records a new head (and epoch, if higher) and wakes every waiter.</summary>
    public void Publish(string shareId, ulong cursor, ulong epoch) => Get(shareId).Publish(cursor, epoch);

    /// <summary>Wakes every waiter of every share (they re-read storage): a change feed reconnected and may have missed some.</summary>
    public void PublishAll()
    {
        foreach (var signal in _signals.Values) signal.Publish(0, 0);
    }
}

public sealed class ShareSignal
{
    private readonly object _gate = new();
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _epoch;
    private ulong _cursor;
    private int _subscribers;

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
