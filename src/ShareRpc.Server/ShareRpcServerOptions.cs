namespace ShareRpc.Server;

/// <summary>Named limits, each with its unit in the name or doc. Exceeding one is RESOURCE_EXHAUSTED naming the field.</summary>
public sealed class ShareRpcLimits
{
    /// <summary>Ops in one AppendOps batch (count).</summary>
    public int MaxOpsPerBatch { get; set; } = 1024;
    /// <summary>Bytes of one Put/Append value.</summary>
    public int MaxValueBytes { get; set; } = 1024 * 1024;
    /// <summary>Length of a document key (UTF-16 chars).</summary>
    public int MaxKeyLength { get; set; } = 512;
    /// <summary>Length of a collection name (UTF-16 chars).</summary>
    public int MaxCollectionLength { get; set; } = 128;
    /// <summary>depends_on entries of one op (count).</summary>
    public int MaxDependsOnPerOp { get; set; } = 64;
    /// <summary>Length of op_id, producer_id, batch_id and each depends_on entry (chars).</summary>
    public int MaxIdLength { get; set; } = 128;
    /// <summary>Length of a content type (chars).</summary>
    public int MaxContentTypeLength { get; set; } = 256;
    /// <summary>Length of share_key (chars).</summary>
    public int MaxShareKeyLength { get; set; } = 256;
    /// <summary>Length of a share title or a capability note (chars).</summary>
    public int MaxTitleLength { get; set; } = 1024;
    /// <summary>Labels on one share (count).</summary>
    public int MaxLabels { get; set; } = 64;
    /// <summary>Length of one label key or value (chars).</summary>
    public int MaxLabelLength { get; set; } = 256;
    /// <summary>Bytes of an owner or delegation secret (min is 32).</summary>
    public int MaxSecretBytes { get; set; } = 1024;
    /// <summary>Batches a single AppendOps stream may have in flight before the server stops reading (count).</summary>
    public int MaxBatchesInFlightPerStream { get; set; } = 64;
    /// <summary>Documents per GetSnapshot page and per Subscribe snapshot chunk (count).</summary>
    public int MaxSnapshotPageSize { get; set; } = 1000;
    /// <summary>Open Subscribe streams per share (count).</summary>
    public int MaxSubscribersPerShare { get; set; } = 256;
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
        Positive(MaxSnapshotPageSize, nameof(MaxSnapshotPageSize));
        Positive(MaxSubscribersPerShare, nameof(MaxSubscribersPerShare));
        Positive(MaxStreamsPerConnection, nameof(MaxStreamsPerConnection));
        if (MaxSecretBytes < 32) throw new ArgumentOutOfRangeException(nameof(MaxSecretBytes), MaxSecretBytes, "MaxSecretBytes must be >= 32");
    }
}

/// <summary>Server options (bound by AddShareRpcServer, validated at start).</summary>
public sealed class ShareRpcServerOptions
{
    /// <summary>Directory holding the SQLite file and the server key; created if missing.</summary>
    public string DataDirectory { get; set; } = "sharerpc-data";
    /// <summary>
    /// File holding the live-ref signing key (32+ random bytes, created mode 0600 if missing). Default:
    /// <c>DataDirectory/server.key</c>. Servers sharing one database (PostgreSQL) must all point at the
    /// same key, or a live ref redeemed on one node is refused by the others (docs/deploy-postgres.md).
    /// </summary>
    public string? ServerKeyFile { get; set; }

    /// <summary>Rerunning a whole group after a transient store error (deadlock, serialization, uniqueness race) — attempts (count).</summary>
    public int MaxCommitAttempts { get; set; } = 8;

    /// <summary>When set, CreateShare requires <c>authorization: Bearer TOKEN</c>.</summary>
    public string? CreatorToken { get; set; }
    /// <summary>HOST:PORT written into sturdy refs; when null, the request's :authority is used.</summary>
    public string? PublicEndpoint { get; set; }
    /// <summary>Whether sturdy refs use sharerpcs:// (when null: true iff the request came over TLS).</summary>
    public bool? PublicTls { get; set; }
    /// <summary>Lifetime of a live ref from RedeemShare.</summary>
    public TimeSpan LiveRefLifetime { get; set; } = TimeSpan.FromHours(1);
    /// <summary>Idle time after which a subscriber gets a heartbeat.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>Most writes (batches, creates, revokes …) committed in one transaction (count).</summary>
    public int MaxWritesPerCommit { get; set; } = 256;
    /// <summary>Writes waiting for the committer before submitters wait (count).</summary>
    public int MaxQueuedWrites { get; set; } = 4096;
    public ShareRpcLimits Limits { get; set; } = new();

    /// <summary>
    /// true (default): SQLite <c>synchronous=FULL</c>, an fsync per commit (survives power loss).
    /// false: <c>synchronous=NORMAL</c> in WAL: a commit survives a process crash (SIGKILL) but the last
    /// commits may be lost on power loss. For tests and chaos runs that need speed.
    /// </summary>
    public bool FsyncEveryCommit { get; set; } = true;

    internal byte[] LoadServerKey() => ServerKeyFile is { } file
        ? Capabilities.ServerKey.LoadOrCreateFile(file)
        : Capabilities.ServerKey.LoadOrCreate(DataDirectory);

    /// <summary>Failure injection (docs/chaos.md); null (off) unless set with <see cref="EnableFaultInjection"/>.</summary>
    public ServerFaultHooks? Faults { get; private set; }

    /// <summary>Switches failure injection on, in code only (no configuration key or wire message reaches it).</summary>
    public ShareRpcServerOptions EnableFaultInjection(ServerFaultHooks hooks)
    {
        ArgumentNullException.ThrowIfNull(hooks);
        Faults = hooks;
        return this;
    }

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory)) throw new ArgumentException("DataDirectory is required", nameof(DataDirectory));
        if (LiveRefLifetime <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(LiveRefLifetime), "LiveRefLifetime must be > 0");
        if (HeartbeatInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(HeartbeatInterval), "HeartbeatInterval must be > 0");
        if (MaxWritesPerCommit <= 0) throw new ArgumentOutOfRangeException(nameof(MaxWritesPerCommit), "MaxWritesPerCommit must be > 0");
        if (MaxCommitAttempts <= 0) throw new ArgumentOutOfRangeException(nameof(MaxCommitAttempts), "MaxCommitAttempts must be > 0");
        if (ServerKeyFile is { Length: 0 }) throw new ArgumentException("ServerKeyFile must be null or a path", nameof(ServerKeyFile));
        if (MaxQueuedWrites <= 0) throw new ArgumentOutOfRangeException(nameof(MaxQueuedWrites), "MaxQueuedWrites must be > 0");
        if (CreatorToken is { Length: 0 }) throw new ArgumentException("CreatorToken must be null or non-empty", nameof(CreatorToken));
        Limits.Validate();
    }
}
