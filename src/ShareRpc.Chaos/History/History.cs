using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using ShareRpc.Chaos.Faults;

namespace ShareRpc.Chaos.History;

/// <summary>What a history event says, as in Jepsen: an op invoked, then ok / fail / indeterminate; plus faults and notes.</summary>
public enum EventType
{
    Invoke,
    Ok,
    Fail,
    Indeterminate,
    Fault,
    Info,
}

/// <summary>One event. <see cref="OpId"/> is set for op events (enqueue, ack), null for the others.</summary>
public sealed record HistoryEvent(long Index, double AtMs, string Actor, EventType Type, string What, string? OpId, string Detail)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"  #{Index,-5} {AtMs,8:0.0}ms {Actor,-8} {Type.ToString().ToLowerInvariant(),-13} {What,-9} {OpId ?? "",-24} {Detail}");
}

/// <summary>The history of one scenario (thread-safe, append-only, totally ordered by <see cref="HistoryEvent.Index"/>).</summary>
public sealed class OpHistory
{
    private readonly ConcurrentQueue<HistoryEvent> _events = new();
    private readonly ConcurrentDictionary<FaultKind, int> _faults = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _next;

    public HistoryEvent Add(string actor, EventType type, string what, string? opId = null, string detail = "")
    {
        var e = new HistoryEvent(Interlocked.Increment(ref _next), _clock.Elapsed.TotalMilliseconds, actor, type, what, opId, detail);
        _events.Enqueue(e);
        return e;
    }

    /// <summary>Records that a scheduled fault fired.</summary>
    public void Fault(ScheduledFault fault, string detail = "")
    {
        _faults.AddOrUpdate(fault.Kind, 1, (_, n) => n + 1);
        Add(fault.Target, EventType.Fault, fault.Kind.Name(), null, $"{fault.Point}#{fault.Index}{(fault.DelayMs > 0 ? $" {fault.DelayMs}ms" : "")} {detail}".TrimEnd());
    }

    public IReadOnlyList<HistoryEvent> Events => [.. _events.OrderBy(e => e.Index)];

    public IReadOnlyDictionary<FaultKind, int> FaultsFired => new Dictionary<FaultKind, int>(_faults);

    /// <summary>
    /// The smallest slice that shows a violation about <paramref name="opIds"/>: every event of those ops, and the
    /// faults and notes of the same actors between the first and the last of them.
    /// </summary>
    public IReadOnlyList<HistoryEvent> Slice(IReadOnlyCollection<string> opIds, IReadOnlyCollection<string>? actors = null)
    {
        var all = Events;
        var ops = all.Where(e => e.OpId is not null && opIds.Contains(e.OpId)).ToList();
        if (ops.Count == 0)
        {
            // A violation about an actor rather than ops (a stream that did not end, a stuck writer): its faults,
            // notes and failures, and the revokes that name it.
            return actors is null ? [] : all.Where(e =>
                    (actors.Contains(e.Actor) && e.Type is EventType.Fault or EventType.Info or EventType.Fail)
                    || (e.What == "revoke" && actors.Any(a => e.Detail.Contains(a, StringComparison.Ordinal))))
                .Take(40).ToList();
        }

        var from = ops.Min(e => e.Index);
        var to = ops.Max(e => e.Index);
        var who = new HashSet<string>(ops.Select(e => e.Actor), StringComparer.Ordinal) { "server" };
        if (actors is not null)
        {
            who.UnionWith(actors);
        }

        return all.Where(e => e.Index >= from && e.Index <= to && (e.OpId is not null ? opIds.Contains(e.OpId) : who.Contains(e.Actor))).ToList();
    }
}
