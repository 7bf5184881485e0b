using System.Globalization;
using System.Text;
using ShareRpc.Server.Storage;
using Sharerpc.V1;

namespace ShareRpc.Chaos.Checker;

/// <summary>
/// The invariants of docs/design.md, "Faults and invariants", checked on an <see cref="Observation"/>:
/// no lost op, no duplicate, per-producer order, the fence, subscriber views and the snapshot.
/// </summary>
internal static class HistoryChecker
{
    public static IReadOnlyList<Violation> Check(Observation o)
    {
        var v = new List<Violation>();
        void Add(string kind, string message, IEnumerable<string>? ops = null, IEnumerable<string>? actors = null) =>
            v.Add(new Violation(kind, message, ops?.ToList() ?? [], actors?.ToList() ?? []));

        foreach (var (kind, message, actor) in o.Stuck)
        {
            Add(kind, message, null, [actor]);
        }

        var producers = o.Producers.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var byProducerId = o.Producers.GroupBy(p => (p.ShareId, p.ProducerId)).ToDictionary(g => g.Key, g => g.First());
        var known = o.Ops.ToDictionary(x => x.OpId, StringComparer.Ordinal);
        var logById = new Dictionary<string, List<LogEntry>>(StringComparer.Ordinal);

        foreach (var share in o.Shares)
        {
            // The log: cursors 1..head without a gap; each op id once.
            for (var i = 0; i < share.Log.Count; i++)
            {
                if (share.Log[i].Cursor != (ulong)i + 1)
                {
                    Add(Violation.Log, $"{share.Name}: log position {i + 1} holds cursor {share.Log[i].Cursor}", [share.Log[i].OpId]);
                    break;
                }
            }

            if ((ulong)share.Log.Count != share.Head)
            {
                Add(Violation.Log, $"{share.Name}: head cursor {share.Head} but {share.Log.Count} log entries");
            }

            foreach (var e in share.Log)
            {
                if (!logById.TryGetValue(e.OpId, out var list))
                {
                    logById[e.OpId] = list = new List<LogEntry>();
                }

                list.Add(e);
            }

            // Per producer: log order = seq order.
            foreach (var g in share.Log.GroupBy(e => e.ProducerId))
            {
                LogEntry? prev = null;
                foreach (var e in g)
                {
                    if (prev is not null && e.Seq <= prev.Seq)
                    {
                        var name = byProducerId.GetValueOrDefault((share.ShareId, g.Key))?.Name ?? g.Key;
                        Add(Violation.Order, $"{share.Name}: producer {name} has seq {e.Seq} at cursor {e.Cursor} after seq {prev.Seq} at cursor {prev.Cursor}", [prev.OpId, e.OpId], [name]);
                    }

                    prev = e;
                }
            }

            // Fence: nothing of a revoked producer after the cursor read when its revoke returned.
            foreach (var p in o.Producers.Where(p => p.ShareId == share.ShareId && p.FencedAfterCursor is not null))
            {
                var late = share.Log.Where(e => e.ProducerId == p.ProducerId && e.Cursor > p.FencedAfterCursor).ToList();
                if (late.Count > 0)
                {
                    Add(Violation.Fence, $"{share.Name}: {late.Count} op(s) of revoked producer {p.Name} applied at cursor {late[0].Cursor} > {p.FencedAfterCursor} (the cursor when its revoke had returned)", late.Select(e => e.OpId), [p.Name]);
                }
            }

            // The snapshot served equals a replay of the log.
            var replay = Replay(share.Log, ulong.MaxValue, out var replayError);
            if (replayError is not null)
            {
                Add(Violation.Snapshot, $"{share.Name}: {replayError}");
            }

            if (Diff(replay, share.Snapshot) is { } diff)
            {
                Add(Violation.Snapshot, $"{share.Name}: GetSnapshot differs from a replay of the log: {diff}");
            }

            // Every subscriber saw exactly the log.
            foreach (var s in o.Subscribers.Where(s => s.ShareId == share.ShareId))
            {
                if (s.FencedAfterCursor is { } fence)
                {
                    // A revoked reader: nothing after the fence, and its stream ended PERMISSION_DENIED.
                    var late = s.Ops.Where(x => x.Cursor > fence).ToList();
                    if (late.Count > 0)
                    {
                        Add(Violation.Fence, $"{s.Name}: revoked reader received {late.Count} op(s) after cursor {fence} (the cursor when its revoke had returned), first {late[0].OpId}@{late[0].Cursor}", late.Select(x => x.OpId), [s.Name]);
                    }

                    if (s.EndedWith is null || !s.EndedWith.StartsWith("PermissionDenied", StringComparison.Ordinal))
                    {
                        Add(Violation.Fence, $"{s.Name}: the stream of a revoked reader did not end PERMISSION_DENIED ({s.EndedWith ?? "still open"})", null, [s.Name]);
                    }
                }
                else if (!s.CaughtUp)
                {
                    Add(Violation.View, $"{s.Name}: did not reach the head cursor {share.Head} (last seen {(s.Ops.Count > 0 ? s.Ops[^1].Cursor : s.SnapshotCursor ?? 0)})", null, [s.Name]);
                }

                var from = 0UL;
                if (s.SnapshotCursor is { } sc)
                {
                    from = sc;
                    if (Diff(Replay(share.Log, sc, out _), s.Snapshot ?? []) is { } sd)
                    {
                        Add(Violation.View, $"{s.Name}: its snapshot at cursor {sc} differs from a replay of the log: {sd}", null, [s.Name]);
                    }
                }

                var expected = share.Log.Where(e => e.Cursor > from).Select(e => (e.Cursor, e.OpId)).ToList();
                var got = s.Ops;
                var n = Math.Min(expected.Count, got.Count);
                for (var i = 0; i < n; i++)
                {
                    if (expected[i] != got[i])
                    {
                        Add(Violation.View, $"{s.Name}: event {i} is {got[i].OpId}@{got[i].Cursor}, the log has {expected[i].OpId}@{expected[i].Cursor}", [got[i].OpId, expected[i].OpId], [s.Name]);
                        break;
                    }
                }

                if (got.Count > expected.Count)
                {
                    Add(Violation.View, $"{s.Name}: received {got.Count - expected.Count} op(s) beyond the log, first {got[expected.Count].OpId}@{got[expected.Count].Cursor}", [got[expected.Count].OpId], [s.Name]);
                }
            }
        }

        // No duplicate op id in any log; no op that nobody enqueued.
        foreach (var (id, entries) in logById)
        {
            if (entries.Count > 1)
            {
                Add(Violation.Duplicate, $"op {id} applied {entries.Count} times, at cursors {string.Join(", ", entries.Select(e => e.Cursor))}", [id]);
            }

            if (!known.ContainsKey(id))
            {
                Add(Violation.Phantom, $"op {id} at cursor {entries[0].Cursor} was never enqueued", [id]);
            }
        }

        // No lost op: each durable op applied once, or rejected with a reason the client holds, or (its writer
        // stopped by a revoke) still in the outbox.
        foreach (var op in o.Ops)
        {
            var entries = logById.GetValueOrDefault(op.OpId) ?? [];
            var producer = producers.GetValueOrDefault(op.Producer);
            var entry = entries.FirstOrDefault();
            if (entry is not null && producer is not null && (entry.ProducerId != producer.ProducerId || (op.Seq != 0 && entry.Seq != op.Seq)))
            {
                Add(Violation.Order, $"op {op.OpId} is in the log as producer {entry.ProducerId} seq {entry.Seq}, enqueued as {producer.ProducerId} seq {op.Seq}", [op.OpId], [op.Producer]);
            }

            if (!op.Durable)
            {
                continue; // indeterminate: at most once (checked above)
            }

            switch (op.Outcome)
            {
                case { Status: OpStatus.Applied or OpStatus.Duplicate } acked:
                    if (entry is null)
                    {
                        Add(Violation.Lost, $"op {op.OpId} was acked {acked.Status} at cursor {acked.Cursor} but is not in the log", [op.OpId], [op.Producer]);
                    }
                    else if (entry.Cursor != acked.Cursor)
                    {
                        Add(Violation.Lost, $"op {op.OpId} was acked at cursor {acked.Cursor} but the log has it at {entry.Cursor}", [op.OpId], [op.Producer]);
                    }

                    break;
                case { Status: OpStatus.Rejected } rejected:
                    if (entry is not null)
                    {
                        Add(Violation.Duplicate, $"op {op.OpId} was acked REJECTED ({rejected.RejectReason}) but is in the log at cursor {entry.Cursor}", [op.OpId], [op.Producer]);
                    }
                    else if (rejected.RejectReason == RejectReason.Unspecified)
                    {
                        Add(Violation.Lost, $"op {op.OpId} was rejected without a reason", [op.OpId], [op.Producer]);
                    }

                    break;
                case null:
                    if (producer?.StopReason is null)
                    {
                        Add(Violation.Lost, $"op {op.OpId} (seq {op.Seq}) was durably enqueued but never acked, and its writer did not stop: {(entry is null ? "not in the log" : $"in the log at {entry.Cursor}")}", [op.OpId], [op.Producer]);
                    }
                    else if (producer.FencedAfterCursor is null)
                    {
                        Add(Violation.Lost, $"op {op.OpId} is unacked: writer {op.Producer} stopped ({producer.StopReason}) without being revoked", [op.OpId], [op.Producer]);
                    }
                    else if (!op.InOutbox)
                    {
                        Add(Violation.Lost, $"op {op.OpId} of revoked writer {op.Producer} is unacked and no longer in its outbox", [op.OpId], [op.Producer]);
                    }

                    break;
            }
        }

        return v;
    }

    /// <summary>The live documents after replaying the log up to <paramref name="upTo"/> (versions count tombstones).</summary>
    public static IReadOnlyList<ObservedDocument> Replay(IReadOnlyList<LogEntry> log, ulong upTo, out string? error)
    {
        error = null;
        var docs = new Dictionary<(string, string), (ObservedDocument Doc, bool Deleted)>();
        foreach (var e in log)
        {
            if (e.Cursor > upTo)
            {
                break;
            }

            var key = e.Kind == OpKind.Append ? e.Cursor.ToString(CultureInfo.InvariantCulture) : e.Key;
            var version = docs.TryGetValue((e.Collection, key), out var prev) ? prev.Doc.Version + 1 : 1;
            if (version != e.Version && error is null)
            {
                error = $"log entry {e.OpId}@{e.Cursor} says version {e.Version}, a replay gives {version}";
            }

            docs[(e.Collection, key)] = (new ObservedDocument(e.Collection, key, Encoding.UTF8.GetString(e.Value ?? []), version, e.Cursor), e.Kind == OpKind.Delete);
        }

        return [.. docs.Values.Where(d => !d.Deleted).Select(d => d.Doc).OrderBy(d => d.Collection, StringComparer.Ordinal).ThenBy(d => d.Key, StringComparer.Ordinal)];
    }

    private static string? Diff(IReadOnlyList<ObservedDocument> expected, IReadOnlyList<ObservedDocument> actual)
    {
        var a = actual.OrderBy(d => d.Collection, StringComparer.Ordinal).ThenBy(d => d.Key, StringComparer.Ordinal).ToList();
        if (a.Count != expected.Count)
        {
            return $"{a.Count} documents, the replay has {expected.Count}";
        }

        for (var i = 0; i < a.Count; i++)
        {
            if (a[i] != expected[i])
            {
                return $"{a[i]} vs replay {expected[i]}";
            }
        }

        return null;
    }
}
