using System.Globalization;
using System.Text;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// The server's per-op checks (its BatchValidator; docs/design.md, "AppendOps semantics"), run before
/// an op is made durable, plus what only a .NET string can get wrong: an unpaired surrogate, which
/// has no UTF-8 form (the server compares ids byte for byte, and protobuf would write U+FFFD).
/// </summary>
internal static class OpValidator
{
    /// <summary>Throws <see cref="InvalidOpException"/> naming the first field the server would refuse.</summary>
    public static void Validate(Op op, ShareRpcClientLimits limits)
    {
        if (op.OpId.Length > 0)
        {
            Id(op.OpId, "op_id", limits);
        }

        if (op.DependsOn.Count > limits.MaxDependsOnPerOp)
        {
            throw Limit("depends_on", nameof(limits.MaxDependsOnPerOp), limits.MaxDependsOnPerOp, "entries", op.DependsOn.Count);
        }

        for (var d = 0; d < op.DependsOn.Count; d++)
        {
            Id(op.DependsOn[d], "depends_on[" + d.ToString(CultureInfo.InvariantCulture) + "]", limits);
        }

        switch (op.KindCase)
        {
            case Op.KindOneofCase.Put:
                Collection(op.Put.Collection, "put.collection", limits);
                Key(op.Put.Key, "put.key", limits);
                Value(op.Put.Value.Length, "put.value", limits);
                ContentType(op.Put.ContentType, "put.content_type", limits);
                break;
            case Op.KindOneofCase.Delete:
                Collection(op.Delete.Collection, "delete.collection", limits);
                Key(op.Delete.Key, "delete.key", limits);
                break;
            case Op.KindOneofCase.Append:
                Collection(op.Append.Collection, "append.collection", limits);
                Value(op.Append.Value.Length, "append.value", limits);
                ContentType(op.Append.ContentType, "append.content_type", limits);
                break;
            default:
                throw new InvalidOpException("kind", "an op must be one of put, delete, append");
        }
    }

    private static void Id(string value, string field, ShareRpcClientLimits limits)
    {
        NonEmptyText(value, field, limits.MaxIdBytes, nameof(limits.MaxIdBytes));
        NoControl(value, field);
    }

    private static void Collection(string value, string field, ShareRpcClientLimits limits)
    {
        NonEmptyText(value, field, limits.MaxCollectionBytes, nameof(limits.MaxCollectionBytes));
        NoControl(value, field);
    }

    private static void Key(string value, string field, ShareRpcClientLimits limits) =>
        NonEmptyText(value, field, limits.MaxKeyBytes, nameof(limits.MaxKeyBytes));

    private static void ContentType(string value, string field, ShareRpcClientLimits limits)
    {
        Utf8(value, field);
        var bytes = Encoding.UTF8.GetByteCount(value);
        if (bytes > limits.MaxContentTypeBytes)
        {
            throw Limit(field, nameof(limits.MaxContentTypeBytes), limits.MaxContentTypeBytes, "bytes", bytes);
        }
    }

    private static void Value(int bytes, string field, ShareRpcClientLimits limits)
    {
        if (bytes > limits.MaxValueBytes)
        {
            throw Limit(field, nameof(limits.MaxValueBytes), limits.MaxValueBytes, "bytes", bytes);
        }
    }

    // The server measures text in UTF-8 bytes (docs/design.md, "Limits"): a key of 200 CJK characters
    // is 600 bytes, so counting chars would let through an op the server refuses.
    private static void NonEmptyText(string value, string field, int maxBytes, string limitName)
    {
        if (value.Length == 0)
        {
            throw new InvalidOpException(field, "must not be empty");
        }

        Utf8(value, field);
        var bytes = Encoding.UTF8.GetByteCount(value);
        if (bytes > maxBytes)
        {
            throw Limit(field, limitName, maxBytes, "bytes", bytes);
        }
    }

    private static void Utf8(string value, string field)
    {
        if (!IsWellFormed(value))
        {
            throw new InvalidOpException(field, "must be valid UTF-8 (it holds an unpaired surrogate)");
        }
    }

    private static bool IsWellFormed(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(value[i]))
            {
                return false;
            }
        }

        return true;
    }

    private static void NoControl(string value, string field)
    {
        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                throw new InvalidOpException(field, "must not contain control characters");
            }
        }
    }

    private static InvalidOpException Limit(string field, string limitName, long limit, string unit, long actual) =>
        new(field, $"{actual} {unit} exceeds {limitName} = {limit} {unit}");
}
