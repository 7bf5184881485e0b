using System.Globalization;
using Sharerpc.V1;

namespace ShareRpc.Server.Apply;

/// <summary>
/// Checks a batch's shape and limits before it reaches the committer. A malformed field is
/// INVALID_ARGUMENT naming it (<c>ops[2].put.collection</c>); an exceeded limit is
/// RESOURCE_EXHAUSTED naming the field and the limit. Nothing of a refused batch is applied.
/// </summary>
internal static class BatchValidator
{
    public static void Validate(AppendOpsRequest batch, ShareRpcLimits limits)
    {
        Id(batch.BatchId, "batch_id", limits);
        Id(batch.ProducerId, "producer_id", limits);
        if (batch.Ops.Count > limits.MaxOpsPerBatch)
            throw ShareRpcException.LimitExceeded("ops", nameof(limits.MaxOpsPerBatch), limits.MaxOpsPerBatch, "ops", batch.Ops.Count);
        if (batch.Ops.Count == 0) return;

        var firstSeq = batch.Ops[0].Seq;
        for (var i = 0; i < batch.Ops.Count; i++)
        {
            var op = batch.Ops[i];
            var at = "ops[" + i.ToString(CultureInfo.InvariantCulture) + "]";
            Id(op.OpId, at + ".op_id", limits);
            if (op.Seq == 0) throw ShareRpcException.InvalidArgument(at + ".seq", "seq starts at 1");
            if (op.Seq != firstSeq + (ulong)i)
                throw ShareRpcException.InvalidArgument(at + ".seq",
                    $"seqs in a batch must be consecutive: expected {firstSeq + (ulong)i}, got {op.Seq}");
            if (op.DependsOn.Count > limits.MaxDependsOnPerOp)
                throw ShareRpcException.LimitExceeded(at + ".depends_on", nameof(limits.MaxDependsOnPerOp), limits.MaxDependsOnPerOp, "entries", op.DependsOn.Count);
            for (var d = 0; d < op.DependsOn.Count; d++)
                Id(op.DependsOn[d], at + ".depends_on[" + d.ToString(CultureInfo.InvariantCulture) + "]", limits);

            switch (op.KindCase)
            {
                case Op.KindOneofCase.Put:
                    Collection(op.Put.Collection, at + ".put.collection", limits);
                    Key(op.Put.Key, at + ".put.key", limits);
                    Value(op.Put.Value.Length, at + ".put.value", limits);
                    ContentType(op.Put.ContentType, at + ".put.content_type", limits);
                    break;
                case Op.KindOneofCase.Delete:
                    Collection(op.Delete.Collection, at + ".delete.collection", limits);
                    Key(op.Delete.Key, at + ".delete.key", limits);
                    break;
                case Op.KindOneofCase.Append:
                    Collection(op.Append.Collection, at + ".append.collection", limits);
                    Value(op.Append.Value.Length, at + ".append.value", limits);
                    ContentType(op.Append.ContentType, at + ".append.content_type", limits);
                    break;
                default:
                    throw ShareRpcException.InvalidArgument(at + ".kind", "an op must be one of put, delete, append");
            }
        }
    }

    internal static void Id(string value, string field, ShareRpcLimits limits)
    {
        if (string.IsNullOrEmpty(value)) throw ShareRpcException.InvalidArgument(field, "must not be empty");
        MaxBytes(value, field, nameof(limits.MaxIdLength), limits.MaxIdLength);
        if (HasControl(value)) throw ShareRpcException.InvalidArgument(field, "must not contain control characters");
    }

    private static void Collection(string value, string field, ShareRpcLimits limits)
    {
        if (string.IsNullOrEmpty(value)) throw ShareRpcException.InvalidArgument(field, "must not be empty");
        MaxBytes(value, field, nameof(limits.MaxCollectionLength), limits.MaxCollectionLength);
        if (HasControl(value)) throw ShareRpcException.InvalidArgument(field, "must not contain control characters");
    }

    private static void Key(string value, string field, ShareRpcLimits limits)
    {
        if (string.IsNullOrEmpty(value)) throw ShareRpcException.InvalidArgument(field, "must not be empty");
        MaxBytes(value, field, nameof(limits.MaxKeyLength), limits.MaxKeyLength);
    }

    /// <summary>
    /// A string's length limit counts its UTF-8 bytes: what is stored, indexed and compared (byte for
    /// byte). The wire already carries valid UTF-8 only: Google.Protobuf fails the parse of anything
    /// else, and the strict binder answers INVALID_ARGUMENT (docs/design.md, "AppendOps semantics").
    /// </summary>
    internal static void MaxBytes(string value, string field, string limitName, int limit)
    {
        // Cheap first: UTF-8 takes at most 3 bytes per UTF-16 char (a surrogate pair: 4 for 2).
        if (value.Length * 3L <= limit) return;
        var bytes = System.Text.Encoding.UTF8.GetByteCount(value);
        if (bytes > limit) throw ShareRpcException.LimitExceeded(field, limitName, limit, "bytes", bytes);
    }

    private static void Value(int length, string field, ShareRpcLimits limits)
    {
        if (length > limits.MaxValueBytes)
            throw ShareRpcException.LimitExceeded(field, nameof(limits.MaxValueBytes), limits.MaxValueBytes, "bytes", length);
    }

    private static void ContentType(string value, string field, ShareRpcLimits limits) =>
        MaxBytes(value, field, nameof(limits.MaxContentTypeLength), limits.MaxContentTypeLength);

    private static bool HasControl(string s)
    {
        foreach (var c in s)
            if (char.IsControl(c)) return true;
        return false;
    }
}
