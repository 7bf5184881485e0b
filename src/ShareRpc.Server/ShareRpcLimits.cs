namespace ShareRpc.Server;

/// <summary>
/// Named limits on what one call or one stream may send or make the server hold (docs/design.md,
/// "Limits"), each with its unit in its name or doc. Exceeding one is RESOURCE_EXHAUSTED naming the
/// field, the limit and its unit. String lengths count UTF-8 bytes (what is stored and compared).
/// The server-wide budgets are on <see cref="ShareRpcServerOptions"/>.
/// </summary>
public sealed class ShareRpcLimits
{
    private const int MiB = 1024 * 1024;

    /// <summary>The largest gRPC message either way (bytes); pages and chunks stay under it.</summary>
    internal const int MaxMessageBytes = Microsoft.Extensions.DependencyInjection.ShareRpcServerServiceCollectionExtensions.MaxMessageBytes;

    /// <summary>What a page or chunk may carry beyond its values and ids: field tags and numbers (bytes).</summary>
    internal const int MessageHeadroomBytes = 64 * 1024;

    /// <summary>Ops in one AppendOps batch (count).</summary>
    public int MaxOpsPerBatch { get; set; } = 1024;
    /// <summary>Bytes of one Put/Append value.</summary>
    public int MaxValueBytes { get; set; } = 1 * MiB;
    /// <summary>Length of a document key (UTF-8 bytes).</summary>
    public int MaxKeyLength { get; set; } = 512;
    /// <summary>Length of a collection name (UTF-8 bytes).</summary>
    public int MaxCollectionLength { get; set; } = 128;
    /// <summary>depends_on entries of one op (count).</summary>
    public int MaxDependsOnPerOp { get; set; } = 64;
    /// <summary>Length of op_id, producer_id, batch_id and each depends_on entry (UTF-8 bytes).</summary>
    public int MaxIdLength { get; set; } = 128;
    /// <summary>Length of a content type (UTF-8 bytes).</summary>
    public int MaxContentTypeLength { get; set; } = 256;
    /// <summary>Length of share_key (UTF-8 bytes).</summary>
    public int MaxShareKeyLength { get; set; } = 256;
    /// <summary>Length of a share title or a capability note (UTF-8 bytes).</summary>
    public int MaxTitleLength { get; set; } = 1024;
    /// <summary>Labels on one share (count).</summary>
    public int MaxLabels { get; set; } = 64;
    /// <summary>Length of one label key or value (UTF-8 bytes).</summary>
    public int MaxLabelLength { get; set; } = 256;
    /// <summary>Bytes of an owner or delegation secret (min is 32).</summary>
    public int MaxSecretBytes { get; set; } = 1024;
    /// <summary>Batches a single AppendOps stream may have in flight (read, not yet acked) before the server stops reading (count).</summary>
    public int MaxBatchesInFlightPerStream { get; set; } = 64;
    /// <summary>
    /// Bytes of batches a single AppendOps stream may have in flight (read and not yet committed,
    /// plus acks not yet written) before the server stops reading it; HTTP/2 flow control then stops
    /// the peer. One batch more (at most the 4 MiB message limit) is what the stream can hold past it.
    /// </summary>
    public int MaxInFlightBytesPerStream { get; set; } = 8 * MiB;
    /// <summary>Documents per GetSnapshot page and per Subscribe snapshot chunk (count).</summary>
    public int MaxSnapshotPageSize { get; set; } = 1000;
    /// <summary>
    /// Bytes of documents (values, keys, collections, content types) in one GetSnapshot page or
    /// Subscribe snapshot chunk; a page always holds at least one document, so it stays under the
    /// 4 MiB message limit whatever the documents' sizes.
    /// </summary>
    public int MaxSnapshotPageBytes { get; set; } = 2 * MiB;
    /// <summary>Log entries one Subscribe catch-up read holds (count).</summary>
    public int MaxCatchUpChunkOps { get; set; } = 1000;
    /// <summary>Bytes of log entries (values and ids) one Subscribe catch-up read holds; at least one entry.</summary>
    public int MaxCatchUpChunkBytes { get; set; } = 1 * MiB;
    /// <summary>Open Subscribe streams per share (count).</summary>
    public int MaxSubscribersPerShare { get; set; } = 256;
    /// <summary>
    /// Open AppendOps and Subscribe streams per capability, in this server process (count): one
    /// holder cannot take a share's <see cref="MaxSubscribersPerShare"/> for itself.
    /// </summary>
    public int MaxStreamsPerCapability { get; set; } = 16;
    /// <summary>Concurrent HTTP/2 streams (calls) per connection (count); Kestrel refuses more (REFUSED_STREAM).</summary>
    public int MaxStreamsPerConnection { get; set; } = 256;

    public void Validate()
    {
        void Positive(int v, string name)
        {
            if (v <= 0) throw new ArgumentOutOfRangeException(name, v, $"{name} must be > 0");
        }
        Positive(MaxOpsPerBatch, nameof(MaxOpsPerBatch));
        Positive(MaxValueBytes, nameof(MaxValueBytes));
        Positive(MaxKeyLength, nameof(MaxKeyLength));
        Positive(MaxCollectionLength, nameof(MaxCollectionLength));
        Positive(MaxDependsOnPerOp, nameof(MaxDependsOnPerOp));
        Positive(MaxIdLength, nameof(MaxIdLength));
        Positive(MaxContentTypeLength, nameof(MaxContentTypeLength));
        Positive(MaxShareKeyLength, nameof(MaxShareKeyLength));
        Positive(MaxTitleLength, nameof(MaxTitleLength));
        Positive(MaxLabels, nameof(MaxLabels));
        Positive(MaxLabelLength, nameof(MaxLabelLength));
        Positive(MaxBatchesInFlightPerStream, nameof(MaxBatchesInFlightPerStream));
        Positive(MaxInFlightBytesPerStream, nameof(MaxInFlightBytesPerStream));
        Positive(MaxSnapshotPageSize, nameof(MaxSnapshotPageSize));
        Positive(MaxSnapshotPageBytes, nameof(MaxSnapshotPageBytes));
        Positive(MaxCatchUpChunkOps, nameof(MaxCatchUpChunkOps));
        Positive(MaxCatchUpChunkBytes, nameof(MaxCatchUpChunkBytes));
        Positive(MaxSubscribersPerShare, nameof(MaxSubscribersPerShare));
        Positive(MaxStreamsPerCapability, nameof(MaxStreamsPerCapability));
        Positive(MaxStreamsPerConnection, nameof(MaxStreamsPerConnection));
        if (MaxSecretBytes < 32) throw new ArgumentOutOfRangeException(nameof(MaxSecretBytes), MaxSecretBytes, "MaxSecretBytes must be >= 32");
        // A page, and a single document or log entry, must fit in one message with its field tags.
        const int room = MaxMessageBytes - MessageHeadroomBytes;
        if (MaxSnapshotPageBytes > room)
            throw new ArgumentOutOfRangeException(nameof(MaxSnapshotPageBytes), MaxSnapshotPageBytes, $"MaxSnapshotPageBytes must be <= {room} bytes (the 4 MiB message limit less headroom)");
        if (MaxValueBytes > room - MaxKeyLength - MaxCollectionLength - MaxContentTypeLength)
            throw new ArgumentOutOfRangeException(nameof(MaxValueBytes), MaxValueBytes, "MaxValueBytes plus a key, collection and content type must fit in one 4 MiB message");
    }
}
