namespace ShareRpc.Client;

/// <summary>
/// The server's limits on one op, checked by the SDK before an op is made durable (docs/design.md,
/// "Limits"; docs/client.md, "Validation"), so that an op the server would refuse never enters the
/// outbox: <c>PutAsync</c>, <c>AppendAsync</c>, <c>DeleteAsync</c> and <c>EnqueueAsync</c> throw
/// <see cref="InvalidOpException"/> instead. The defaults are the server's (<c>ShareRpcLimits</c>);
/// lower them to match a server configured tighter. Each name carries its unit.
/// </summary>
public sealed class ShareRpcClientLimits
{
    /// <summary>Ops in one AppendOps batch (count; the server's <c>MaxOpsPerBatch</c>). <c>Outbox.MaxBatchOps</c> must not exceed it.</summary>
    public int MaxOpsPerBatch { get; set; } = 1024;

    /// <summary>Bytes of one put or append value (the server's <c>MaxValueBytes</c>).</summary>
    public int MaxValueBytes { get; set; } = 1024 * 1024;

    /// <summary>UTF-8 bytes of a document key (the server's <c>MaxKeyLength</c>).</summary>
    public int MaxKeyBytes { get; set; } = 512;

    /// <summary>UTF-8 bytes of a collection name (the server's <c>MaxCollectionLength</c>).</summary>
    public int MaxCollectionBytes { get; set; } = 128;

    /// <summary>UTF-8 bytes of an op id and of each depends_on entry (the server's <c>MaxIdLength</c>).</summary>
    public int MaxIdBytes { get; set; } = 128;

    /// <summary>UTF-8 bytes of a content type (the server's <c>MaxContentTypeLength</c>).</summary>
    public int MaxContentTypeBytes { get; set; } = 256;

    /// <summary>depends_on entries of one op (count; the server's <c>MaxDependsOnPerOp</c>).</summary>
    public int MaxDependsOnPerOp { get; set; } = 64;

    internal IEnumerable<string> Problems()
    {
        if (MaxOpsPerBatch <= 0) yield return $"Limits.MaxOpsPerBatch must be > 0 (was {MaxOpsPerBatch}).";
        if (MaxValueBytes <= 0) yield return $"Limits.MaxValueBytes must be > 0 (was {MaxValueBytes}).";
        if (MaxKeyBytes <= 0) yield return $"Limits.MaxKeyBytes must be > 0 (was {MaxKeyBytes}).";
        if (MaxCollectionBytes <= 0) yield return $"Limits.MaxCollectionBytes must be > 0 (was {MaxCollectionBytes}).";
        if (MaxIdBytes <= 0) yield return $"Limits.MaxIdBytes must be > 0 (was {MaxIdBytes}).";
        if (MaxContentTypeBytes < 0) yield return $"Limits.MaxContentTypeBytes must be >= 0 (was {MaxContentTypeBytes}).";
        if (MaxDependsOnPerOp < 0) yield return $"Limits.MaxDependsOnPerOp must be >= 0 (was {MaxDependsOnPerOp}).";
    }
}

/// <summary>
/// An op the server would refuse (docs/design.md, "AppendOps semantics"), caught before it became
/// durable: nothing of it is in the outbox. <see cref="Field"/> names the field as the server would,
/// relative to the op (<c>put.value</c>, <c>depends_on[2]</c>).
/// </summary>
public sealed class InvalidOpException : ArgumentException
{
    public InvalidOpException(string field, string problem)
        : base($"{field}: {problem}")
    {
        Field = field;
        Problem = problem;
    }

    /// <summary>The offending field, e.g. <c>put.collection</c>.</summary>
    public string Field { get; }

    /// <summary>What is wrong with it, without the field (so a caller can name the field its own way).</summary>
    internal string Problem { get; }
}
