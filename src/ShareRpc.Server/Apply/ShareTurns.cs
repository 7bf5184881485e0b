namespace ShareRpc.Server.Apply;

/// <summary>
/// Which queued write the group committer takes next: shares take turns by cost, deficit round
/// robin. Each share with writes waiting earns <see cref="QuantumCost"/> per visit and its first
/// write goes once its earnings cover the write's cost (its bytes, or its ops weighed at
/// <see cref="CostPerOp"/> bytes each, whichever is more: an op costs lookups and inserts whatever
/// its size). So a group takes a share's 1 KiB batch at its next visit while a share of 3 MiB
/// batches, or of 1,024-append batches, waits for its earnings: one share's heavy writes delay
/// another's by about one group, not by one of its writes per share in turn. Writes of one share
/// come out in the order they went in.
/// </summary>
internal sealed class ShareTurns<T>(Func<T, string> shareOf, Func<T, long> bytesOf, Func<T, int> opsOf)
{
    /// <summary>What a share earns per visit (bytes).</summary>
    public const long QuantumCost = 64 * 1024;

    /// <summary>What one op weighs against bytes.</summary>
    public const long CostPerOp = 256;

    private readonly Dictionary<string, Line> _lines = new(StringComparer.Ordinal);
    private readonly LinkedList<Line> _turns = new(); // shares with writes; the first one's visit is under way

    /// <summary>Writes waiting, of all shares.</summary>
    public int Count { get; private set; }

    public long CostOf(T item) => Math.Max(bytesOf(item), opsOf(item) * CostPerOp);

    public void Add(T item)
    {
        var share = shareOf(item);
        if (!_lines.TryGetValue(share, out var line))
        {
            _lines[share] = line = new Line(share);
            line.Node = _turns.AddLast(line);
        }
        line.Writes.Enqueue(item);
        Count++;
    }

    /// <summary>
    /// The next write in turn, if <paramref name="fits"/> says it goes in the group; false when there is
    /// none, or when the write whose turn it is does not fit (it goes first next time).
    /// </summary>
    public bool TryTake(Func<T, bool> fits, out T item)
    {
        item = default!;
        var fruitless = 0; // visits in a row that found nothing to take
        while (_turns.First is { } node)
        {
            var line = node.Value;
            var head = line.Writes.Peek();
            var cost = CostOf(head);
            if (line.Earned < cost)
            {
                if (++fruitless >= _turns.Count)
                {
                    // A whole round and nobody has earned enough: credit the rounds the nearest one needs at once.
                    var rounds = _turns.Min(l => (CostOf(l.Writes.Peek()) - l.Earned + QuantumCost - 1) / QuantumCost);
                    foreach (var l in _turns) l.Earned += rounds * QuantumCost;
                    fruitless = 0;
                    continue;
                }
                _turns.RemoveFirst();
                _turns.AddLast(node);
                _turns.First!.Value.Earned += QuantumCost; // the next share's visit
                continue;
            }
            if (!fits(head)) return false;
            line.Earned -= cost;
            item = line.Writes.Dequeue();
            Count--;
            if (line.Writes.Count == 0) Remove(line);
            return true;
        }
        return false;
    }

    /// <summary>A share with nothing waiting keeps no earnings; the next share's visit begins.</summary>
    private void Remove(Line line)
    {
        var visiting = _turns.First == line.Node;
        _turns.Remove(line.Node!);
        _lines.Remove(line.Share);
        if (visiting && _turns.First is { } next) next.Value.Earned += QuantumCost;
    }

    private sealed class Line(string share)
    {
        public string Share { get; } = share;
        public long Earned { get; set; }
        public Queue<T> Writes { get; } = new();
        public LinkedListNode<Line>? Node { get; set; }
    }
}
