// What both outbox engines decide the same way about ops and op rows, whatever holds them.
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

internal static class OutboxRows
{
    /// <summary>Refuses an op without a kind and gives one without an id a UUIDv7 (time-ordered: the server's unique index stays append-only).</summary>
    /// <remarks><c>what</c> is how the refusal names the op ("The op", "Op 3").</remarks>
    public static void Identify(Op op, string what, string paramName)
    {
        if (op.KindCase == Op.KindOneofCase.None)
        {
            throw new ArgumentException($"{what} has no kind (put, delete or append).", paramName);
        }

        if (string.IsNullOrEmpty(op.OpId))
        {
            op.OpId = Guid.CreateVersion7().ToString();
        }
    }

    /// <summary>The first seq after <paramref name="sealedSeq"/> that no set-aside op left empty: where the next batch starts.</summary>
    public static ulong FirstToSeal(ulong sealedSeq, HashSet<ulong> holes)
    {
        var first = sealedSeq + 1;
        while (holes.Contains(first))
        {
            first++;
        }

        return first;
    }

    /// <summary>
    /// A sealed batch's rows, <paramref name="first"/>..<paramref name="last"/>, from <paramref name="rows"/> in
    /// seq order; a missing seq is damage (<paramref name="missing"/> names it), so nothing of the batch is sent.
    /// </summary>
    public static List<OutboxStore.OpRow> OfBatch(IEnumerable<OutboxStore.OpRow> rows, ulong first, ulong last, Func<ulong, Exception> missing)
    {
        var list = new List<OutboxStore.OpRow>((int)Math.Min(last - first + 1, 4096));
        var expected = first;
        foreach (var row in rows)
        {
            if (row.Seq != expected)
            {
                break;
            }

            list.Add(row);
            expected++;
        }

        return expected == last + 1 ? list : throw missing(expected);
    }

    /// <summary>
    /// The rows the next batch takes from <paramref name="rows"/> (in seq order from <paramref name="first"/>,
    /// each read — and its checksum checked — only once its seq is the expected one): consecutive, within
    /// <paramref name="maxBatchBytes"/> (one larger op alone), stopping before a hole an op set aside left. A seq
    /// skipped without such a record means the row was lost: the ops before it are sealed (whole and in order)
    /// and the next seal starts at the gap; with none before it, it is damage (<paramref name="missing"/>: the
    /// expected seq and the one found).
    /// </summary>
    public static List<OutboxStore.OpRow> ToSeal(IEnumerable<(ulong Seq, Func<OutboxStore.OpRow> Read)> rows, ulong first, HashSet<ulong> holes,
        long maxBatchBytes, Func<ulong, ulong, Exception> missing)
    {
        var list = new List<OutboxStore.OpRow>();
        long bytes = 0;
        var expected = first;
        foreach (var (seq, read) in rows)
        {
            if (seq != expected)
            {
                return holes.Contains(expected) || list.Count > 0 ? list : throw missing(expected, seq);
            }

            var row = read();
            if (list.Count > 0 && bytes + row.Bytes.Length > maxBatchBytes)
            {
                break;
            }

            list.Add(row);
            bytes += row.Bytes.Length;
            expected++;
        }

        return list;
    }
}
