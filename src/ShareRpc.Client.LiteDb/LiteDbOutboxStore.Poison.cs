// LiteDbOutboxStore: poison ops (docs/client.md, "Poison ops"): taken out of the sequence with the server's reason,
// listed, dropped or enqueued again at the end.
using Grpc.Core;
using LiteDB;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.LiteDb;

internal sealed partial class LiteDbOutboxStore
{
    // set_aside.state, as in the SQLite store: 0 set aside (waiting for the application), 1 dropped, 2 enqueued again.
    private const int SetAsideWaiting = 0;
    private const int SetAsideDropped = 1;
    private const int SetAsideRetried = 2;

    // True once any op is set aside: only then does an enqueue look its op id up in set_aside.
    private volatile bool _hasSetAside;

    /// <summary>
    /// Sets aside op <paramref name="opIndex"/> of the batch the server refused at call level, in one commit: the
    /// op moves to set_aside with the refusal, and every unacked batch of the share is unsealed (the server applied
    /// none of them), so its ops are sealed again into batches whose wire seqs close the hole. Null when the
    /// refused batch is not the share's oldest unacked one.
    /// </summary>
    public Task<PoisonOp?> SetAsideAsync(string shareId, string batchId, int opIndex, ShareRpcCallException refusal, string? field) => WithDbAsync(() => InTransaction(() =>
    {
        var head = BatchRange(shareId, Sealed).Limit(1).FirstOrDefault();
        if (head is null || head["_id"].AsString != batchId)
        {
            return null;
        }

        var (first, last, wireFirst) = ((ulong)head["first_seq"].AsInt64, (ulong)head["last_seq"].AsInt64, (ulong)head["wire_first_seq"].AsInt64);
        if (opIndex < 0 || (ulong)opIndex > last - first)
        {
            return null;
        }

        var row = ReadBatchRows(shareId, batchId, first, last)[opIndex];
        var op = Op.Parser.ParseFrom(row.Bytes);
        var poison = new PoisonOp(shareId, op.OpId, row.Seq, op, refusal.StatusCode, refusal.Reason, field, refusal.Status.Detail, _time.GetUtcNow());
        _setAside.Insert(new BsonDocument
        {
            ["_id"] = RowKey(shareId, row.Seq),
            ["share_id"] = shareId,
            ["seq"] = (long)row.Seq,
            ["op_id"] = op.OpId,
            ["op"] = row.Bytes,
            ["crc"] = (long)Crc32C.OfOpRow(row.Seq, row.Bytes),
            ["status"] = (int)poison.Status,
            ["reason"] = poison.Reason is null ? BsonValue.Null : new BsonValue(poison.Reason),
            ["field"] = field is null ? BsonValue.Null : new BsonValue(field),
            ["detail"] = poison.Detail,
            ["set_aside_at"] = poison.SetAsideAt.ToUnixTimeMilliseconds(),
            ["state"] = SetAsideWaiting,
        });
        _ops.Delete(RowKey(shareId, row.Seq));
        _opIds.Delete(op.OpId);
        _batches.DeleteMany(Query.Between("k", BatchKey(shareId, Sealed, 0), BatchKey(shareId, Sealed, long.MaxValue)));
        UpdateProducer(shareId, p =>
        {
            p["sealed_seq"] = (long)(first - 1);
            p["wire_sealed_seq"] = (long)(wireFirst - 1);
        });
        _hasSetAside = true;
        return poison;
    }));

    /// <summary>The ops set aside and waiting for the application (of one share, or of all), oldest first.</summary>
    public Task<IReadOnlyList<PoisonOp>> GetPoisonOpsAsync(string? shareId = null) => WithDbAsync<IReadOnlyList<PoisonOp>>(() =>
        (shareId is null ? _setAside.Query() : _setAside.Query().Where(RowRange(shareId, 0))).OrderBy("_id").ToEnumerable()
            .Where(d => d["state"].AsInt32 == SetAsideWaiting).Select(ToPoison).ToList());

    /// <summary>The op with this id if it is set aside and waiting, else null.</summary>
    public Task<PoisonOp?> GetPoisonOpAsync(string opId) => WithDbAsync(() => FindWaiting(opId) is { } doc ? ToPoison(doc) : null);

    /// <summary>Drops a poison op for good (it is never sent); false when no op with this id is set aside.</summary>
    public Task<bool> DropPoisonOpAsync(string opId) => WithDbAsync(() =>
    {
        if (FindWaiting(opId) is not { } doc)
        {
            return false;
        }

        // The row stays, without the op, as the hole it left in the seqs until compaction passes it.
        doc["state"] = SetAsideDropped;
        doc["op"] = Array.Empty<byte>();
        return _setAside.Update(doc);
    });

    /// <summary>Enqueues a poison op again, with the same op id, at the end of its share's sequence. Null when none is set aside.</summary>
    public Task<EnqueuedOp?> RetryPoisonOpAsync(string opId) => WithDbAsync(() => InTransaction(() =>
    {
        if (FindWaiting(opId) is not { } doc)
        {
            return null;
        }

        var shareId = doc["share_id"].AsString;
        var op = Op.Parser.ParseFrom(doc["op"].AsBinary);
        var producer = _producers.FindById(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
        var seq = (ulong)producer["next_seq"].AsInt64;
        op.Seq = seq;
        InsertOp(shareId, op, NowMs());
        doc["state"] = SetAsideRetried;
        doc["op"] = Array.Empty<byte>();
        _setAside.Update(doc);
        producer["next_seq"] = (long)seq + 1;
        _producers.Update(producer);
        return new EnqueuedOp(op.OpId, seq);
    }));

    /// <summary>Seqs after <paramref name="afterSeq"/> that an op set aside left empty (few: one per poison op).</summary>
    private HashSet<ulong> ReadHoles(string shareId, ulong afterSeq) =>
        _setAside.Query().Where(RowRange(shareId, afterSeq + 1)).ToEnumerable().Select(d => (ulong)d["seq"].AsInt64).ToHashSet();

    private bool IsSetAside(string opId) => FindWaiting(opId) is not null;

    private BsonDocument? FindWaiting(string opId) =>
        _setAside.Find(Query.EQ("op_id", opId)).FirstOrDefault(d => d["state"].AsInt32 == SetAsideWaiting);

    /// <summary>Ops set aside and waiting, in the whole outbox.</summary>
    private long CountSetAside() => _setAside.LongCount(Query.EQ("state", SetAsideWaiting));

    private static PoisonOp ToPoison(BsonDocument d) => new(
        d["share_id"].AsString, d["op_id"].AsString, (ulong)d["seq"].AsInt64, Op.Parser.ParseFrom(d["op"].AsBinary), (StatusCode)d["status"].AsInt32,
        d["reason"].IsNull ? null : d["reason"].AsString, d["field"].IsNull ? null : d["field"].AsString, d["detail"].AsString,
        DateTimeOffset.FromUnixTimeMilliseconds(d["set_aside_at"].AsInt64));
}
