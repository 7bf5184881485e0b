// LiteDbOutboxStore: the producer of each share (its id and seqs), per-share status, and create-share intents.
using LiteDB;
using ShareRpc.Client.Outbox;

namespace ShareRpc.Client.LiteDb;

internal sealed partial class LiteDbOutboxStore
{
    /// <summary>The producer for a share, made (with a new producer id) the first time; a new sturdy ref replaces the old.</summary>
    public Task<ProducerInfo> EnsureProducerAsync(string shareId, string sturdyRef)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentException.ThrowIfNullOrEmpty(sturdyRef);
        return WithDbAsync(() =>
        {
            var doc = _producers.FindById(shareId) ?? new BsonDocument
            {
                ["_id"] = shareId,
                ["producer_id"] = Guid.CreateVersion7().ToString(),
                ["next_seq"] = 1L,
                ["sealed_seq"] = 0L,
                ["wire_sealed_seq"] = 0L,
                ["acked_seq"] = 0L,
                ["rejected"] = 0L,
                ["stopped_reason"] = BsonValue.Null,
            };
            doc["sturdy_ref"] = sturdyRef;
            _producers.Upsert(doc);
            return ToProducer(doc);
        });
    }

    public Task<IReadOnlyList<ProducerInfo>> GetProducersAsync() => WithDbAsync<IReadOnlyList<ProducerInfo>>(() =>
        _producers.Query().OrderBy("_id").ToEnumerable().Select(ToProducer).ToArray());

    /// <summary>Ops made durable and not yet sealed (set-aside holes included: a hint, not a count to seal).</summary>
    public Task<ulong> CountUnsealedAsync(string shareId) => WithDbAsync(() =>
        ReadProducer(shareId) is { } p && p.NextSeq > p.SealedSeq + 1 ? p.NextSeq - 1 - p.SealedSeq : 0UL);

    private ProducerInfo? ReadProducer(string shareId) => _producers.FindById(shareId) is { } doc ? ToProducer(doc) : null;

    private static ProducerInfo ToProducer(BsonDocument d) => new(
        d["_id"].AsString, d["producer_id"].AsString, d["sturdy_ref"].AsString, (ulong)d["next_seq"].AsInt64, (ulong)d["acked_seq"].AsInt64,
        (ulong)d["sealed_seq"].AsInt64, (ulong)d["wire_sealed_seq"].AsInt64);

    /// <summary>Changes a producer row in place (in the caller's transaction, if any).</summary>
    private bool UpdateProducer(string shareId, Action<BsonDocument> change)
    {
        var doc = _producers.FindById(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
        change(doc);
        return _producers.Update(doc);
    }

    /// <summary>Records why a share's sender stopped (e.g. PERMISSION_DENIED); null clears it.</summary>
    public Task SetStoppedReasonAsync(string shareId, string? reason) => WithDbAsync(() =>
    {
        if (_producers.FindById(shareId) is { } doc)
        {
            doc["stopped_reason"] = reason is null ? BsonValue.Null : new BsonValue(reason);
            _producers.Update(doc);
        }
    });

    /// <summary>Ops after the acked seq, less the holes set-aside ops left there (index lookups: holes are few).</summary>
    private long Pending(ProducerInfo p) =>
        (long)(p.NextSeq - 1 - p.AckedSeq) - _setAside.Count(RowRange(p.ShareId, p.AckedSeq + 1));

    /// <summary>True when every op enqueued for the share is acked, rejected or set aside.</summary>
    public Task<bool> IsDrainedAsync(string shareId) => WithDbAsync(() => ReadProducer(shareId) is not { } p || Pending(p) <= 0);

    /// <summary>True when the producer's acked seq has reached <paramref name="seq"/>.</summary>
    public Task<bool> IsAckedAsync(string shareId, ulong seq) => WithDbAsync(() => ReadProducer(shareId) is { } p && p.AckedSeq >= seq);

    public Task<OutboxStatus> GetStatusAsync(string shareId) => WithDbAsync(() =>
    {
        if (_producers.FindById(shareId) is not { } doc)
        {
            return new OutboxStatus(shareId, 0, 0, 0, null, null);
        }

        var p = ToProducer(doc);
        var oldest = OpRows(shareId, p.AckedSeq + 1, limit: 1).FirstOrDefault();
        return new OutboxStatus(
            shareId,
            Pending(p),
            BatchRange(shareId, Sealed).LongCount(),
            doc["rejected"].AsInt64,
            oldest is null ? null : DateTimeOffset.FromUnixTimeMilliseconds(oldest["t"].AsInt64),
            doc["stopped_reason"].IsNull ? null : doc["stopped_reason"].AsString,
            _setAside.Query().Where(RowRange(shareId, 0)).ToEnumerable().LongCount(d => d["state"].AsInt32 == SetAsideWaiting));
    });

    /// <summary>
    /// The persisted intent to create a share, written (with its owner secret) before the remote call; the
    /// first caller's secret wins (one transaction, and one process per file), so every racer creates the same share.
    /// </summary>
    public Task<ShareIntent> GetOrAddShareIntentAsync(string server, string shareKey, string title, byte[] newSecret)
    {
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentException.ThrowIfNullOrEmpty(shareKey);
        return WithDbAsync(() => InTransaction(() =>
        {
            var id = IntentId(server, shareKey);
            if (_intents.FindById(id) is not { } doc)
            {
                doc = new BsonDocument
                {
                    ["_id"] = id,
                    ["server"] = server,
                    ["share_key"] = shareKey,
                    ["owner_secret"] = newSecret,
                    ["title"] = title ?? "",
                    ["share_id"] = BsonValue.Null,
                    ["sturdy_ref"] = BsonValue.Null,
                    ["state"] = (int)ShareIntentState.Pending,
                    ["created_at"] = NowMs(),
                };
                _intents.Insert(doc);
            }

            return ToIntent(doc);
        }));
    }

    /// <summary>Records the server's answer to a create (or clears it: null, for a recreate).</summary>
    public Task SetShareIntentResultAsync(string server, string shareKey, string? shareId, string? sturdyRef, ShareIntentState state) => WithDbAsync(() =>
    {
        if (_intents.FindById(IntentId(server, shareKey)) is { } doc)
        {
            doc["share_id"] = shareId is null ? BsonValue.Null : new BsonValue(shareId);
            doc["sturdy_ref"] = sturdyRef is null ? BsonValue.Null : new BsonValue(sturdyRef);
            doc["state"] = (int)state;
            _intents.Update(doc);
        }
    });

    public Task<ShareIntent?> GetShareIntentAsync(string server, string shareKey) =>
        WithDbAsync(() => _intents.FindById(IntentId(server, shareKey)) is { } doc ? ToIntent(doc) : null);

    private static string IntentId(string server, string shareKey) => server + KeySeparator + shareKey;

    private static ShareIntent ToIntent(BsonDocument d) => new(
        d["server"].AsString, d["share_key"].AsString, d["owner_secret"].AsBinary, d["title"].AsString,
        d["share_id"].IsNull ? null : d["share_id"].AsString, d["sturdy_ref"].IsNull ? null : d["sturdy_ref"].AsString, (ShareIntentState)d["state"].AsInt32);
}
