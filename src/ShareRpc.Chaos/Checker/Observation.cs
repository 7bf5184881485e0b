using ShareRpc.Server.Storage;
using OpOutcome = ShareRpc.Client.Outbox.OpOutcome;

namespace ShareRpc.Chaos.Checker;

/// <summary>An op as the client side saw it at the end: durably enqueued or not, and what its outbox holds.</summary>
/// <param name="OpId">The op's id.</param>
/// <param name="Producer">The producer (client) that enqueued it.</param>
/// <param name="Seq">Its seq in that producer's sequence.</param>
/// <param name="Durable">EnqueueAsync returned (the op is durable in the outbox); false = indeterminate (the enqueue failed or the process died in it).</param>
/// <param name="Outcome">The ack recorded in the outbox (APPLIED / DUPLICATE with cursor, or REJECTED with reason); null while unacked.</param>
/// <param name="InOutbox">The op is still in the outbox file.</param>
internal sealed record ObservedOp(string OpId, string Producer, ulong Seq, bool Durable, OpOutcome? Outcome, bool InOutbox);

/// <summary>A producer at the end. <see cref="FencedAfterCursor"/>: the share's cursor read after its revoke returned (null: never revoked).</summary>
internal sealed record ObservedProducer(string Name, string ShareId, string ProducerId, string? StopReason, ulong? FencedAfterCursor);

/// <summary>A document as a snapshot shows it.</summary>
internal sealed record ObservedDocument(string Collection, string Key, string Value, ulong Version, ulong Cursor);

/// <summary>
/// What a subscriber received: an optional snapshot (at its cursor), then ops. A revoked reader has
/// <see cref="FencedAfterCursor"/> (the cursor read after its revoke returned) and <see cref="EndedWith"/> (how its stream ended).
/// </summary>
internal sealed record ObservedSubscriber(string Name, string ShareId, ulong? SnapshotCursor, IReadOnlyList<ObservedDocument>? Snapshot, IReadOnlyList<(ulong Cursor, string OpId)> Ops, bool CaughtUp,
    ulong? FencedAfterCursor = null, string? EndedWith = null);

/// <summary>A share at the end: its log read from storage, its head, and the snapshot served over the wire.</summary>
internal sealed record ObservedShare(string Name, string ShareId, IReadOnlyList<LogEntry> Log, ulong Head, IReadOnlyList<ObservedDocument> Snapshot);

/// <summary>Everything the checker looks at.</summary>
internal sealed class Observation
{
    public List<ObservedShare> Shares { get; } = new();
    public List<ObservedProducer> Producers { get; } = new();
    public List<ObservedOp> Ops { get; } = new();
    public List<ObservedSubscriber> Subscribers { get; } = new();

    /// <summary>Liveness problems found while running (a drain that never finished …): each is a violation.</summary>
    public List<(string Kind, string Message, string Actor)> Stuck { get; } = new();
}
