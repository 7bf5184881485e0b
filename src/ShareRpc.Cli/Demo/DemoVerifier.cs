using System.Globalization;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Demo;

/// <summary>An op a writer enqueued (durable in its outbox) and the ack it got.</summary>
internal sealed record EnqueuedOp(string Writer, string OpId, ulong Seq, OpOutcome Outcome);

/// <summary>What the comparison found. <see cref="Ok"/> only when every check held.</summary>
internal sealed record DemoVerdict(int Ops, int Lost, int Duplicated, IReadOnlyList<string> Problems)
{
    public bool Ok => Lost == 0 && Duplicated == 0 && Problems.Count == 0;
}

/// <summary>
/// The demo's closing check: what the writers enqueued against the server's log read from
/// cursor 0. Every enqueued op (but the fenced ones) in the log exactly once, at the cursor its
/// ack named; nothing in the log nobody enqueued; no fenced op in the log; cursors 1..head
/// without a gap; each writer's ops in its seq order; the viewer saw exactly the log.
/// </summary>
internal static class DemoVerifier
{
    public static DemoVerdict Verify(
        IReadOnlyList<EnqueuedOp> enqueued,
        IReadOnlyList<string> fenced,
        IReadOnlyList<CommittedOp> log,
        ulong head,
        IReadOnlyList<CommittedOp> viewer)
    {
        var problems = new List<string>();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var cursorOf = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var op in log)
        {
            counts[op.Op.OpId] = counts.GetValueOrDefault(op.Op.OpId) + 1;
            cursorOf.TryAdd(op.Op.OpId, op.Cursor);
        }

        var lost = enqueued.Where(e => !counts.ContainsKey(e.OpId)).ToList();
        var duplicated = counts.Values.Sum(c => c - 1);
        foreach (var e in lost.Take(3))
        {
            problems.Add($"lost: {e.Writer}'s op seq {e.Seq} ({e.OpId}) is not in the log");
        }

        foreach (var (id, c) in counts.Where(kv => kv.Value > 1).Take(3))
        {
            problems.Add($"duplicated: op {id} is in the log {c} times");
        }

        var known = enqueued.Select(e => e.OpId).ToHashSet(StringComparer.Ordinal);
        var fencedSet = fenced.ToHashSet(StringComparer.Ordinal);
        foreach (var op in log)
        {
            if (fencedSet.Contains(op.Op.OpId))
            {
                problems.Add($"fence: the fenced op {op.Op.OpId} was applied at cursor {op.Cursor}");
            }
            else if (!known.Contains(op.Op.OpId))
            {
                problems.Add($"phantom: cursor {op.Cursor} holds op {op.Op.OpId}, which nobody enqueued");
            }
        }

        var expectedCursors = Enumerable.Range(1, (int)head).Select(i => (ulong)i);
        if (!log.Select(l => l.Cursor).SequenceEqual(expectedCursors))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"log: cursors are not 1..{head} without a gap ({log.Count} ops read)"));
        }

        foreach (var e in enqueued)
        {
            if (e.Outcome.Status is not (OpStatus.Applied or OpStatus.Duplicate))
            {
                problems.Add($"ack: {e.Writer}'s op seq {e.Seq} was {e.Outcome.Status} ({e.Outcome.RejectReason} {e.Outcome.Detail})");
            }
            else if (cursorOf.TryGetValue(e.OpId, out var at) && at != e.Outcome.Cursor)
            {
                problems.Add($"ack: {e.Writer}'s op seq {e.Seq} was acked at cursor {e.Outcome.Cursor} but the log has it at {at}");
            }
        }

        foreach (var writer in enqueued.GroupBy(e => e.Writer))
        {
            var seqs = writer.Where(e => cursorOf.ContainsKey(e.OpId)).OrderBy(e => cursorOf[e.OpId]).Select(e => e.Seq).ToList();
            if (!seqs.SequenceEqual(seqs.Order()))
            {
                problems.Add($"order: {writer.Key}'s ops are not in seq order in the log");
            }
        }

        if (!viewer.Select(v => (v.Cursor, v.Op.OpId)).SequenceEqual(log.Select(l => (l.Cursor, l.Op.OpId))))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"view: the viewer's {viewer.Count} ops differ from the log's {log.Count}"));
        }

        return new DemoVerdict(enqueued.Count, lost.Count, duplicated, problems);
    }
}
