using ShareRpc.Server.Capabilities;

namespace ShareRpc.Server.Storage;

/// <summary>A share row. <see cref="RowId"/> is the store's internal key (never on the wire).</summary>
internal sealed record ShareRecord(
    long RowId, string ShareId, string ShareKey, string Title, IReadOnlyDictionary<string, string> Labels,
    ulong Epoch, ulong Cursor, DateTimeOffset CreatedAt);

/// <summary>A capability row. <see cref="ParentRowId"/> is null for the owner capability.</summary>
internal sealed record CapabilityRecord(
    long RowId, string CapabilityId, long ShareRowId, long? ParentRowId, byte[] SecretHash, Rights Rights,
    DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt, string Note, DateTimeOffset CreatedAt);

internal enum OpKind
{
    Put = 1,
    Delete = 2,
    Append = 3,
}

/// <summary>An applied op at its place in the log (the value lives only here; documents point at it).</summary>
internal sealed record LogEntry(
    ulong Cursor, string OpId, string ProducerId, ulong Seq, OpKind Kind, string Collection, string Key,
    byte[]? Value, string ContentType, ulong? ExpectedVersion, IReadOnlyList<string> DependsOn,
    ulong Version, DateTimeOffset CommittedAt);

/// <summary>What the store remembers of an op id: applied (cursor, version) or rejected (reason, detail).</summary>
internal sealed record OpOutcome(bool Applied, ulong Cursor, ulong Version, int RejectReason, string Detail);

/// <summary>
/// A producer's place in a share: its last seq, and the capability it belongs to (the row id of
/// the capability that first wrote under this producer id; null for a row from before schema v2,
/// which the next writer claims).
/// </summary>
internal sealed record ProducerRecord(ulong LastSeq, long? CapabilityRowId);

/// <summary>The head of a document (tombstones included: versions keep counting after a delete).</summary>
internal sealed record DocumentHead(ulong Version, ulong Cursor, long LogRowId, bool Deleted);

/// <summary>A live (not deleted) document with its value, for snapshots.</summary>
internal sealed record DocumentRecord(string Collection, string Key, byte[] Value, string ContentType, ulong Version, ulong Cursor);

/// <summary>
/// What a read chunk holds of a log entry or a document, in bytes: its value plus its ids and names
/// in UTF-8 — what the byte limits on chunks and pages count (docs/design.md, "Limits"). The wire
/// message adds only field tags and numbers (see <c>ShareRpcLimits.MessageHeadroomBytes</c>).
/// </summary>
internal static class StoredBytes
{
    public static long Text(string s) => System.Text.Encoding.UTF8.GetByteCount(s);

    /// <summary>An entry whose value is <paramref name="valueBytes"/> long (given, so a store can size it before loading the value).</summary>
    public static long Of(LogEntry e, long valueBytes)
    {
        var n = valueBytes + Text(e.OpId) + Text(e.ProducerId) + Text(e.Collection) + Text(e.Key) + Text(e.ContentType);
        foreach (var d in e.DependsOn) n += Text(d);
        return n;
    }

    public static long Of(LogEntry e) => Of(e, e.Value?.Length ?? 0);

    public static long Of(DocumentRecord d, long valueBytes) => valueBytes + Text(d.Collection) + Text(d.Key) + Text(d.ContentType);

    public static long Of(DocumentRecord d) => Of(d, d.Value.Length);
}

/// <summary>
/// Reads; inside a <see cref="IShareReader"/> they see one consistent state.
/// </summary>
internal interface IShareReader : IAsyncDisposable
{
    Task<ShareRecord?> GetShareAsync(string shareId, CancellationToken ct = default);
    Task<ShareRecord?> GetShareByKeyAsync(string shareKey, CancellationToken ct = default);
    Task<CapabilityRecord?> GetCapabilityAsync(string capabilityId, CancellationToken ct = default);
    Task<IReadOnlyList<CapabilityRecord>> GetCapabilitiesAsync(long shareRowId, CancellationToken ct = default);
    Task<CapabilityRecord?> GetCapabilityBySecretHashAsync(long shareRowId, byte[] secretHash, CancellationToken ct = default);

    /// <summary>
    /// Log entries with cursor ≥ <paramref name="fromCursor"/>, in cursor order: at most
    /// <paramref name="max"/>, and ending before the entry that would take their
    /// <see cref="StoredBytes"/> past <paramref name="maxBytes"/> (the first entry always comes, so a
    /// reader always progresses). A store never loads the value of an entry it leaves out.
    /// </summary>
    Task<IReadOnlyList<LogEntry>> ReadLogAsync(long shareRowId, ulong fromCursor, int max, long maxBytes = long.MaxValue, CancellationToken ct = default);

    /// <summary>
    /// Live documents ordered by (collection, key), strictly after <paramref name="after"/> when
    /// given; at most <paramref name="max"/> and <paramref name="maxBytes"/> as <see cref="ReadLogAsync"/>.
    /// </summary>
    Task<IReadOnlyList<DocumentRecord>> ReadDocumentsAsync(
        long shareRowId, string? collection, (string Collection, string Key)? after, int max, long maxBytes = long.MaxValue, CancellationToken ct = default);

    /// <summary>Whether a live document follows <paramref name="after"/> (in <paramref name="collection"/> when given); reads no value.</summary>
    Task<bool> HasDocumentsAfterAsync(long shareRowId, string? collection, (string Collection, string Key) after, CancellationToken ct = default);
}

/// <summary>
/// One write transaction. The logic (Apply/, Capabilities/) runs entirely on this interface;
/// a store guarantees that write transactions on a share are serialized (SQLite: one writer;
/// PostgreSQL: <see cref="LockShareAsync"/> is SELECT … FOR UPDATE) and that uniqueness
/// (share key, op id per share, cursor per share) is enforced by constraints.
/// </summary>
internal interface IShareTransaction : IShareReader
{
    /// <summary>Reads the share row and locks it for this transaction.</summary>
    Task<ShareRecord?> LockShareAsync(string shareId, CancellationToken ct = default);

    Task SavepointAsync(string name, CancellationToken ct = default);
    Task ReleaseSavepointAsync(string name, CancellationToken ct = default);
    Task RollbackToSavepointAsync(string name, CancellationToken ct = default);
    Task CommitAsync(CancellationToken ct = default);

    Task<long> InsertShareAsync(string shareId, string shareKey, string title, IReadOnlyDictionary<string, string> labels, DateTimeOffset createdAt, CancellationToken ct = default);
    Task UpdateShareHeadAsync(long shareRowId, ulong epoch, ulong cursor, CancellationToken ct = default);

    Task<long> InsertCapabilityAsync(string capabilityId, long shareRowId, long? parentRowId, byte[] secretHash, Rights rights,
        DateTimeOffset? expiresAt, string note, DateTimeOffset createdAt, CancellationToken ct = default);
    Task MarkRevokedAsync(IReadOnlyList<long> capabilityRowIds, DateTimeOffset revokedAt, CancellationToken ct = default);

    Task<OpOutcome?> FindOpAsync(long shareRowId, string opId, CancellationToken ct = default);

    /// <summary>What is known of each of <paramref name="opIds"/> (absent ones are left out); one round trip per chunk.</summary>
    Task<Dictionary<string, OpOutcome>> FindOpsAsync(long shareRowId, IReadOnlyCollection<string> opIds, CancellationToken ct = default);
    /// <summary>The producer's last seq and owner, or null for a producer id never written in this share.</summary>
    Task<ProducerRecord?> GetProducerAsync(long shareRowId, string producerId, CancellationToken ct = default);

    /// <summary>Records the producer's last seq and binds it to <paramref name="capabilityRowId"/> (docs/design.md, "AppendOps semantics").</summary>
    Task SetProducerAsync(long shareRowId, string producerId, ulong lastSeq, long capabilityRowId, CancellationToken ct = default);
    Task<DocumentHead?> GetDocumentHeadAsync(long shareRowId, string collection, string key, CancellationToken ct = default);

    /// <summary>
    /// The heads of those of <paramref name="keys"/> that exist (absent ones are left out). A batch
    /// looks up all its targets at once, so a networked store pays one round trip per batch, not
    /// per op. The default asks one key at a time (right for an embedded store).
    /// </summary>
    async Task<Dictionary<(string Collection, string Key), DocumentHead>> GetDocumentHeadsAsync(
        long shareRowId, IReadOnlyCollection<(string Collection, string Key)> keys, CancellationToken ct = default)
    {
        var heads = new Dictionary<(string Collection, string Key), DocumentHead>(keys.Count);
        foreach (var k in keys)
        {
            if (heads.ContainsKey(k)) continue;
            if (await GetDocumentHeadAsync(shareRowId, k.Collection, k.Key, ct).ConfigureAwait(false) is { } head) heads[k] = head;
        }
        return heads;
    }

    /// <summary>Appends an applied op to the log and points the document at it. Returns the log row id.</summary>
    Task<long> AppendLogAsync(long shareRowId, LogEntry entry, CancellationToken ct = default);
    Task UpsertDocumentAsync(long shareRowId, string collection, string key, ulong version, ulong cursor, long logRowId, bool deleted, CancellationToken ct = default);
    Task InsertRejectionAsync(long shareRowId, string opId, int rejectReason, string detail, CancellationToken ct = default);
}

/// <summary>The store contract: the embedded SQLite store and a PostgreSQL store implement it.</summary>
internal interface IShareStore : IAsyncDisposable
{
    /// <summary>Begins a write transaction (the caller commits or disposes to roll back).</summary>
    Task<IShareTransaction> BeginWriteAsync(CancellationToken ct = default);

    /// <summary>Opens a read-only, consistent view.</summary>
    Task<IShareReader> BeginReadAsync(CancellationToken ct = default);

    /// <summary>
    /// Whether a failed write transaction may simply be run again from the start: a deadlock, a
    /// serialization failure, or a uniqueness race with another server process on the same
    /// database. The group committer then reruns the whole group (bounded). The embedded store,
    /// with one writer, has none.
    /// </summary>
    bool IsTransient(Exception error) => false;

    /// <summary>
    /// A cheap read that fails when the store cannot be reached (PostgreSQL down, a file gone): what
    /// the health check asks, bounded by <paramref name="ct"/> (docs/design.md, "Diagnostics").
    /// </summary>
    async Task ProbeAsync(CancellationToken ct)
    {
        var reader = await BeginReadAsync(ct).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            await reader.GetShareAsync("-", ct).ConfigureAwait(false);
        }
    }
}

/// <summary>A change committed by any server process sharing the store.</summary>
/// <param name="ShareId">The share; null means "anything may have changed" (after the feed (re)connected).</param>
/// <param name="Cursor">The share's head after the change (0 when unknown).</param>
/// <param name="Epoch">The share's epoch after the change (0 when unknown).</param>
internal readonly record struct ShareChange(string? ShareId, ulong Cursor, ulong Epoch);

/// <summary>
/// Implemented by a store that several server processes share (PostgreSQL: LISTEN/NOTIFY). The
/// engine runs it for its lifetime and wakes its subscribers and open streams with each change,
/// so a commit on one node reaches subscribers on every node. Delivery is a hint, never the data:
/// a woken subscriber reads storage, and after a reconnect the feed reports
/// <c>ShareChange(null, 0, 0)</c> so every subscriber re-reads what it may have missed.
/// </summary>
internal interface IShareChangeFeed
{
    /// <summary>Runs until <paramref name="ct"/> is cancelled, reconnecting as needed.</summary>
    Task RunAsync(Action<ShareChange> onChange, CancellationToken ct);
}
