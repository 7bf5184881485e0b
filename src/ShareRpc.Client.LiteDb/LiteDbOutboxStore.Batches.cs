// LiteDbOutboxStore: sealing ops into batches, the unacked batches a reconnect resends, and recording acks.
using System.Globalization;
using Google.Protobuf;
using LiteDB;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.LiteDb;

internal sealed partial class LiteDbOutboxStore
{
    // Batch states, as in the SQLite store: 1 sealed (unacked), 2 acked.
    private const int Sealed = 1;
    private const int Acked = 2;

    /// <summary>The batch index key: share, state, first seq, so that a share's sealed (or acked) batches are one ordered range.</summary>
    private static string BatchKey(string shareId, int state, ulong firstSeq) =>
        shareId + KeySeparator + state.ToString(CultureInfo.InvariantCulture) + KeySeparator + ((long)Math.Min(firstSeq, long.MaxValue)).ToString(SeqFormat, CultureInfo.InvariantCulture);

    /// <summary>A share's batches in <paramref name="state"/> whose first seq is in [from, to], oldest first (or newest first).</summary>
    private ILiteQueryableResult<BsonDocument> BatchRange(string shareId, int state, ulong from = 0, ulong to = long.MaxValue, bool newestFirst = false)
    {
        var query = _batches.Query().Where(Query.Between("k", BatchKey(shareId, state, from), BatchKey(shareId, state, to)));
        return newestFirst ? query.OrderByDescending("k") : query.OrderBy("k");
    }

    /// <summary>
    /// Seals the oldest unsealed ops of a share into one batch (by MaxBatchOps and MaxBatchBytes), committed before
    /// anything is sent; null when nothing waits. Each row is checked (its checksum, and that no seq is missing)
    /// before it is sealed; a batch ends where an op was set aside, so its outbox seqs stay consecutive.
    /// </summary>
    public Task<SealedBatch?> SealNextBatchAsync(string shareId) => WithDbAsync<SealedBatch?>(() =>
    {
        var producer = ReadProducer(shareId) ?? throw new InvalidOperationException($"No producer for share {shareId}.");
        var holes = ReadHoles(shareId, producer.SealedSeq);
        var first = OutboxRows.FirstToSeal(producer.SealedSeq, holes);

        var rows = ReadRowsToSeal(shareId, first, holes);
        if (rows.Count == 0)
        {
            return first < producer.NextSeq
                ? throw Damaged($"the op rows of share {shareId} from seq {first} on are missing, but its producer has enqueued up to seq {producer.NextSeq - 1}.")
                : null;
        }

        var batchId = Guid.CreateVersion7().ToString();
        var last = first + (ulong)rows.Count - 1;
        var wireFirst = producer.WireSealedSeq + 1;
        InTransaction(() =>
        {
            _batches.Insert(new BsonDocument
            {
                ["_id"] = batchId,
                ["k"] = BatchKey(shareId, Sealed, first),
                ["share_id"] = shareId,
                ["first_seq"] = (long)first,
                ["last_seq"] = (long)last,
                ["op_count"] = rows.Count,
                ["wire_first_seq"] = (long)wireFirst,
                ["sealed_at"] = NowMs(),
            });
            return UpdateProducer(shareId, p =>
            {
                p["sealed_seq"] = (long)last;
                p["wire_sealed_seq"] = (long)(wireFirst + (ulong)rows.Count - 1);
            });
        });
        return new SealedBatch(batchId, shareId, first, last, rows.Count, OutboxStore.BuildRequest(batchId, producer.ProducerId, rows, wireFirst), wireFirst, OutboxStore.EnqueueTimes(rows));
    });

    /// <summary>
    /// Up to MaxBatchOps rows from <paramref name="first"/> on, consecutive and within MaxBatchBytes (one larger op
    /// alone); stops before a hole an op set aside left. Only that many rows are read.
    /// </summary>
    private List<OutboxStore.OpRow> ReadRowsToSeal(string shareId, ulong first, HashSet<ulong> holes)
    {
        var rows = OpRows(shareId, first, limit: _options.MaxBatchOps).Select(doc => ((ulong)doc["seq"].AsInt64, (Func<OutboxStore.OpRow>)(() => ReadRow(doc))));
        return OutboxRows.ToSeal(rows, first, holes, _options.MaxBatchBytes, (expected, found) => Damaged(
            $"the op row at seq {expected} of share {shareId} is missing (seq {found} follows seq {expected - 1}). Nothing from seq {expected} on was sent."));
    }

    /// <summary>
    /// Every sealed, unacked batch of a share whose last seq is at least <paramref name="fromSeq"/>, oldest first,
    /// its request bytes rebuilt from the stored (immutable, checked) op bytes: the same bytes every time.
    /// </summary>
    public Task<IReadOnlyList<SealedBatch>> GetUnackedBatchesAsync(string shareId, ulong fromSeq = 0, int limit = int.MaxValue) => WithDbAsync<IReadOnlyList<SealedBatch>>(() =>
    {
        if (ReadProducer(shareId) is not { } producer)
        {
            return Array.Empty<SealedBatch>();
        }

        var docs = BatchRange(shareId, Sealed).ToEnumerable().Where(b => (ulong)b["last_seq"].AsInt64 >= fromSeq).Take(limit).ToList();
        var list = new List<SealedBatch>(docs.Count);
        foreach (var b in docs)
        {
            var (id, first, last, count, wireFirst) = (b["_id"].AsString, (ulong)b["first_seq"].AsInt64, (ulong)b["last_seq"].AsInt64, b["op_count"].AsInt32, (ulong)b["wire_first_seq"].AsInt64);
            var rows = ReadBatchRows(shareId, id, first, last);
            if (rows.Count != count)
            {
                throw Damaged($"batch {id} of share {shareId} says it holds {count} ops, but seqs {first}..{last} hold {rows.Count}.");
            }

            list.Add(new SealedBatch(id, shareId, first, last, count, OutboxStore.BuildRequest(id, producer.ProducerId, rows, wireFirst), wireFirst, OutboxStore.EnqueueTimes(rows)));
        }

        return list;
    });

    /// <summary>The op rows of a sealed batch, each checked; a missing row is damage (a batch covers consecutive seqs).</summary>
    private List<OutboxStore.OpRow> ReadBatchRows(string shareId, string batchId, ulong first, ulong last)
    {
        return OutboxRows.OfBatch(OpRows(shareId, first, last).Select(ReadRow), first, last, missing => Damaged(
            $"batch {batchId} of share {shareId} covers seqs {first}..{last}, but the op row at seq {missing} is missing. Nothing from it was sent."));
    }

    /// <summary>
    /// Records an accepted batch's acks in one commit: the batch takes the response (per-op outcomes are read
    /// from it), rejected ops are kept in their own collection, the producer's acked seq advances. An ack for
    /// a batch not sealed here (already acked) changes nothing and returns none.
    /// </summary>
    public Task<IReadOnlyList<OpOutcome>> RecordAckAsync(string shareId, AppendOpsResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.BatchStatus != BatchStatus.Accepted)
        {
            throw new ArgumentException($"Only accepted batches are recorded; {response.BatchId} is {response.BatchStatus}.", nameof(response));
        }

        return WithDbAsync(() => InTransaction<IReadOnlyList<OpOutcome>>(() =>
        {
            var batch = _batches.FindById(response.BatchId);
            if (batch is null || batch["share_id"].AsString != shareId || !batch["k"].AsString.Equals(BatchKey(shareId, Sealed, (ulong)batch["first_seq"].AsInt64), StringComparison.Ordinal))
            {
                return Array.Empty<OpOutcome>();
            }

            var (first, last, now) = ((ulong)batch["first_seq"].AsInt64, (ulong)batch["last_seq"].AsInt64, NowMs());
            batch["k"] = BatchKey(shareId, Acked, first);
            batch["acked_at"] = now;
            batch["response"] = response.ToByteArray();
            _batches.Update(batch);
            var outcomes = new List<OpOutcome>(response.Acks.Count);
            var rejected = 0L;
            foreach (var ack in response.Acks)
            {
                outcomes.Add(OutboxStore.ToOutcome(ack));
                if (ack.Status == OpStatus.Rejected)
                {
                    rejected++;
                    RecordRejection(shareId, ack, first, last, now);
                }
            }

            UpdateProducer(shareId, p =>
            {
                p["acked_seq"] = Math.Max(p["acked_seq"].AsInt64, (long)last);
                p["rejected"] = p["rejected"].AsInt64 + rejected;
            });
            return outcomes;
        }));
    }

    /// <summary>Keeps a rejection (compaction leaves it: the client must be able to report it), for an op of this batch only.</summary>
    private void RecordRejection(string shareId, OpAck ack, ulong first, ulong last, long now)
    {
        if (FindOp(ack.OpId) is not { } op || op["share_id"].AsString != shareId || (ulong)op["seq"].AsInt64 < first || (ulong)op["seq"].AsInt64 > last)
        {
            return;
        }

        _rejections.Upsert(new BsonDocument
        {
            ["_id"] = ack.OpId,
            ["share_id"] = shareId,
            ["seq"] = op["seq"].AsInt64,
            ["reason"] = (int)ack.RejectReason,
            ["detail"] = ack.Detail ?? "",
            ["acked_at"] = now,
        });
    }
}
