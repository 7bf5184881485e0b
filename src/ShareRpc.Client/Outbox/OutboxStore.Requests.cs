// OutboxStore: reading op rows back (checked) and building a batch's request bytes from them.
using Google.Protobuf;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

internal sealed partial class OutboxStore
{
    /// <summary>One op row as stored: its outbox seq, its serialized Op (which carries that seq) and when it was enqueued (Unix ms).</summary>
    internal readonly record struct OpRow(ulong Seq, byte[] Bytes, long EnqueuedAtMs);

    /// <summary>
    /// The op rows of a sealed batch, <paramref name="first"/> to <paramref name="last"/>, each
    /// checked against its checksum; a missing row is damage (a batch covers consecutive seqs).
    /// </summary>
    private List<OpRow> ReadBatchRows(string shareId, string batchId, ulong first, ulong last)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT seq, op, crc, enqueued_at FROM ops WHERE share_id = $s AND seq BETWEEN $f AND $l ORDER BY seq";
        cmd.Parameters.AddWithValue("$s", shareId);
        cmd.Parameters.AddWithValue("$f", (long)first);
        cmd.Parameters.AddWithValue("$l", (long)last);
        return OutboxRows.OfBatch(Unread(cmd).Select(row => row.Read()), first, last, missing => Damaged(
            $"batch {batchId} of share {shareId} covers seqs {first}..{last}, but the op row at seq {missing} is missing. Nothing from it was sent."));
    }

    /// <summary>Reads (seq, op, crc, enqueued_at) and checks the checksum.</summary>
    private OpRow ReadRow(Microsoft.Data.Sqlite.SqliteDataReader r)
    {
        var seq = (ulong)r.GetInt64(0);
        var bytes = r.GetValue(1) as byte[] ?? throw Damaged($"the op row at seq {seq} holds no op bytes (a {r.GetDataTypeName(1)} value).");
        VerifyRow(seq, bytes, r.IsDBNull(2) ? null : r.GetInt64(2));
        return new OpRow(seq, bytes, r.GetInt64(3));
    }

    /// <summary>
    /// The AppendOpsRequest bytes for a batch: fields 1 and 2, then each stored op as field 3 —
    /// exactly what protobuf would write for the whole message. An op whose wire seq equals its
    /// outbox seq (every op, unless one was set aside before it) goes as stored, without parsing;
    /// the others are written again with their wire seq. Either way the result depends only on
    /// the stored rows, the batch id and the wire seq, so a resend is byte-for-byte the same.
    /// </summary>
    internal static byte[] BuildRequest(string batchId, string producerId, List<OpRow> rows, ulong wireFirstSeq)
    {
        var ops = new List<byte[]>(rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            var wire = wireFirstSeq + (ulong)i;
            if (rows[i].Seq == wire)
            {
                ops.Add(rows[i].Bytes);
                continue;
            }

            var op = Op.Parser.ParseFrom(rows[i].Bytes);
            op.Seq = wire;
            ops.Add(op.ToByteArray());
        }

        var head = new AppendOpsRequest { BatchId = batchId, ProducerId = producerId }.ToByteArray();
        var size = head.Length;
        foreach (var op in ops)
        {
            size += 1 + CodedOutputStream.ComputeLengthSize(op.Length) + op.Length;
        }

        var bytes = new byte[size];
        head.CopyTo(bytes, 0);
        var at = head.Length;
        foreach (var op in ops)
        {
            bytes[at++] = OpsFieldTag;
            // Base-128 varint length (protobuf encoding).
            var len = (uint)op.Length;
            while (len >= 0x80)
            {
                bytes[at++] = (byte)(len | 0x80);
                len >>= 7;
            }

            bytes[at++] = (byte)len;
            op.CopyTo(bytes, at);
            at += op.Length;
        }

        return at == size ? bytes : throw new InvalidOperationException("Batch size miscounted.");
    }
}
