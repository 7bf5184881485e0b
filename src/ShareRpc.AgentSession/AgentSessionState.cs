using Sharerpc.Agent.V1;

namespace ShareRpc.AgentSession;

/// <summary>A file diff and the cursor it was appended at (its key in collection <c>diffs</c>).</summary>
public sealed record CommittedDiff(ulong Cursor, FileDiff Diff);

/// <summary>A document the reader could not use (wrong content type, unparsable value, bad key).</summary>
public sealed record SkippedRecord(string Collection, string Key, ulong Cursor, string Reason);

/// <summary>
/// An agent session as read from a share at <see cref="Cursor"/>: the session record, messages
/// (ordered by created_at, then id), parts per message id (ordered by part id, as their keys
/// sort), diffs in commit order, models. Immutable; its records are copies.
/// Equality compares the content only, not <see cref="Cursor"/>.
/// </summary>
public sealed class AgentSessionState : IEquatable<AgentSessionState>
{
    private static readonly IReadOnlyList<Part> s_noParts = [];

    public AgentSessionState(
        ulong cursor,
        Session? session,
        IReadOnlyList<Message> messages,
        IReadOnlyDictionary<string, IReadOnlyList<Part>> parts,
        IReadOnlyList<CommittedDiff> diffs,
        IReadOnlyList<Model> models,
        ModelRef? defaultModel)
    {
        Cursor = cursor;
        Session = session;
        Messages = messages;
        Parts = parts;
        Diffs = diffs;
        Models = models;
        DefaultModel = defaultModel;
    }

    /// <summary>An empty session at cursor 0.</summary>
    public static AgentSessionState Empty { get; } = new(0, null, [], new Dictionary<string, IReadOnlyList<Part>>(), [], [], null);

    /// <summary>The share cursor this state reflects (every op up to it, none after).</summary>
    public ulong Cursor { get; }

    public Session? Session { get; }

    public IReadOnlyList<Message> Messages { get; }

    /// <summary>Parts by message id (taken from the part's key).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<Part>> Parts { get; }

    public IReadOnlyList<CommittedDiff> Diffs { get; }

    public IReadOnlyList<Model> Models { get; }

    public ModelRef? DefaultModel { get; }

    public IReadOnlyList<Part> PartsOf(string messageId) => Parts.TryGetValue(messageId, out var p) ? p : s_noParts;

    public bool Equals(AgentSessionState? other)
    {
        if (other is null)
        {
            return false;
        }

        if (ReferenceEquals(this, other))
        {
            return true;
        }

        return Equals(Session, other.Session)
            && Messages.SequenceEqual(other.Messages)
            && Parts.Count == other.Parts.Count
            && Parts.All(kv => other.Parts.TryGetValue(kv.Key, out var o) && kv.Value.SequenceEqual(o))
            && Diffs.SequenceEqual(other.Diffs)
            && Models.SequenceEqual(other.Models)
            && Equals(DefaultModel, other.DefaultModel);
    }

    public override bool Equals(object? obj) => Equals(obj as AgentSessionState);

    public override int GetHashCode() => HashCode.Combine(Session, Messages.Count, Parts.Count, Diffs.Count, Models.Count);

    public override string ToString() =>
        $"AgentSessionState(cursor {Cursor}, session '{Session?.Id}', {Messages.Count} messages, {Parts.Values.Sum(p => p.Count)} parts, {Diffs.Count} diffs, {Models.Count} models)";
}
