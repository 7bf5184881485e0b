namespace ShareRpc.Server.Apply;

/// <summary>
/// A byte budget shared by keys (shares), admitted fairly by bytes: deficit round robin. Each share
/// with waiters is visited in turn and earns <see cref="QuantumBytes"/> per visit; its first waiter is
/// let in once its earnings cover the waiter's bytes and there is room. So a share sending 1 KiB
/// batches is let in on its next visit while a share sending 3 MiB batches waits for 48 visits: one
/// share's large writes delay another's by about one turn, not by the whole line (first come, first
/// served made an honest producer wait behind every flood batch that came before it; docs/design.md,
/// "Limits"). Nobody is starved: earnings only grow until a waiter is let in, and when the waiter
/// whose turn it is does not fit, nobody passes it. Waiters of one share are let in in the order
/// they came, so one share's writes keep their order. Takers that find nobody waiting and room
/// enough go straight in.
/// </summary>
internal sealed class FairByteBudget
{
    /// <summary>What a share earns per visit (bytes).</summary>
    public const long QuantumBytes = 64 * 1024;

    private readonly object _gate = new();
    private readonly Dictionary<string, Line> _lines = new(StringComparer.Ordinal);
    private readonly LinkedList<Line> _turns = new(); // shares with waiters; the first one's visit is under way
    private long _inUse;
    private long _peak;
    private int _waiting;

    public FairByteBudget(long capacity, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        Name = name;
    }

    public long Capacity { get; }
    public string Name { get; }

    public long InUse
    {
        get { lock (_gate) return _inUse; }
    }

    /// <summary>The most bytes ever taken at once.</summary>
    public long Peak
    {
        get { lock (_gate) return _peak; }
    }

    /// <summary>Takers waiting for room now.</summary>
    public int Waiting
    {
        get { lock (_gate) return _waiting; }
    }

    /// <summary>Takes <paramref name="bytes"/> for <paramref name="key"/>, waiting for its turn and for room.</summary>
    public Task AcquireAsync(long bytes, string key, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ct.ThrowIfCancellationRequested();
        Line line;
        Waiter waiter;
        lock (_gate)
        {
            if (_waiting == 0 && Fits(bytes))
            {
                Take(bytes);
                return Task.CompletedTask;
            }
            if (!_lines.TryGetValue(key, out line!))
            {
                _lines[key] = line = new Line(key);
                line.Node = _turns.AddLast(line);
            }
            waiter = new Waiter(bytes);
            waiter.Node = line.Waiters.AddLast(waiter);
            _waiting++;
            Admit();
        }
        return ct.CanBeCanceled ? WaitAsync(line, waiter, ct) : waiter.Done.Task;
    }

    private async Task WaitAsync(Line line, Waiter waiter, CancellationToken ct)
    {
        using var registration = ct.Register(() => Abandon(line, waiter));
        await waiter.Done.Task.ConfigureAwait(false);
    }

    /// <summary>Gives <paramref name="bytes"/> back and lets waiters in, in their turns.</summary>
    public void Release(long bytes)
    {
        if (bytes <= 0) return;
        lock (_gate)
        {
            _inUse -= bytes;
            if (_inUse < 0) throw new InvalidOperationException($"{Name}: released more bytes than were taken");
            Admit();
        }
    }

    private bool Fits(long bytes) => _inUse + bytes <= Capacity || _inUse == 0;

    private void Take(long bytes)
    {
        _inUse += bytes;
        if (_inUse > _peak) _peak = _inUse;
    }

    /// <summary>
    /// Visits shares in turn (under the lock): the share whose visit is under way lets its waiters in
    /// while its earnings cover them and they fit, then the next share's visit begins with a quantum.
    /// Stops when the waiter whose turn it is does not fit: it goes first once there is room.
    /// </summary>
    private void Admit()
    {
        var fruitless = 0; // visits in a row that let nobody in
        while (_turns.First is { } node)
        {
            var line = node.Value;
            var head = line.Waiters.First!.Value;
            if (line.Earned < head.Bytes)
            {
                if (++fruitless >= _turns.Count)
                {
                    // A whole round and nobody has earned enough: credit the rounds the nearest one still
                    // needs at once, so a 4 MiB waiter costs one step, not 64 rounds.
                    var rounds = _turns.Min(l => (l.Waiters.First!.Value.Bytes - l.Earned + QuantumBytes - 1) / QuantumBytes);
                    foreach (var l in _turns) l.Earned += rounds * QuantumBytes;
                    fruitless = 0;
                    continue;
                }
                _turns.RemoveFirst();
                _turns.AddLast(node);
                _turns.First!.Value.Earned += QuantumBytes; // the next share's visit
                continue;
            }
            if (!Fits(head.Bytes)) return;
            fruitless = 0;
            line.Earned -= head.Bytes;
            Remove(line, head);
            Take(head.Bytes);
            head.Done.TrySetResult();
        }
    }

    private void Remove(Line line, Waiter waiter)
    {
        line.Waiters.Remove(waiter.Node!);
        waiter.Node = null;
        _waiting--;
        if (line.Waiters.Count > 0) return;
        var visiting = _turns.First == line.Node;
        _turns.Remove(line.Node!); // a share with nobody waiting keeps no earnings
        _lines.Remove(line.Key);
        if (visiting && _turns.First is { } next) next.Value.Earned += QuantumBytes; // the next share's visit begins
    }

    private void Abandon(Line line, Waiter waiter)
    {
        lock (_gate)
        {
            if (waiter.Node is null) return; // already let in
            Remove(line, waiter);
            waiter.Done.TrySetCanceled();
            Admit();
        }
    }

    private sealed class Line(string key)
    {
        public string Key { get; } = key;
        public long Earned { get; set; }
        public LinkedList<Waiter> Waiters { get; } = new();
        public LinkedListNode<Line>? Node { get; set; }
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;
        public LinkedListNode<Waiter>? Node { get; set; }
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
