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
        if (value.Length > limits.MaxIdLength)
            throw ShareRpcException.LimitExceeded(field, nameof(limits.MaxIdLength), limits.MaxIdLength, "chars", value.Length);
        if (HasControl(value)) throw ShareRpcException.InvalidArgument(field, "must not contain control characters");
    }

    private static void Collection(string value, string field, ShareRpcLimits limits)
    {
        if (string.IsNullOrEmpty(value)) throw ShareRpcException.InvalidArgument(field, "must not be empty");
        if (value.Length > limits.MaxCollectionLength)
            throw ShareRpcException.LimitExceeded(field, nameof(limits.MaxCollectionLength), limits.MaxCollectionLength, "chars", value.Length);
        if (HasControl(value)) throw ShareRpcException.InvalidArgument(field, "must not contain control characters");
    }

    private static void Key(string value, string field, ShareRpcLimits limits)
    {
        if (string.IsNullOrEmpty(value)) throw ShareRpcException.InvalidArgument(field, "must not be empty");
        if (value.Length > limits.MaxKeyLength)
            throw ShareRpcException.LimitExceeded(field, nameof(limits.MaxKeyLength), limits.MaxKeyLength, "chars", value.Length);
    }

    private static void Value(int length, string field, ShareRpcLimits limits)
    {
        if (length > limits.MaxValueBytes)
            throw ShareRpcException.LimitExceeded(field, nameof(limits.MaxValueBytes), limits.MaxValueBytes, "bytes", length);
    }

    private static void ContentType(string value, string field, ShareRpcLimits limits)
    {
        if (value.Length > limits.MaxContentTypeLength)
            throw ShareRpcException.LimitExceeded(field, nameof(limits.MaxContentTypeLength), limits.MaxContentTypeLength, "chars", value.Length);
    }

    private static bool HasControl(string s)
    {
        foreach (var c in s)
            if (char.IsControl(c)) return true;
        return false;
    }
}
