namespace ShareRpc.Server;

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
    /// <summary>
    /// HOST:PORT written into sturdy refs. When null, the address the server itself is bound to on the
    /// connection (its local IP and port), never the client-chosen <c>:authority</c>.
    /// </summary>
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
    /// <summary>
    /// Server-wide budget of AppendOps batches read from any stream and not yet committed (bytes).
    /// When it is spent, streams stop reading (HTTP/2 flow control stops their peers) until commits
    /// free it, let in by share in turns by bytes: the write queue cannot grow past it.
    /// </summary>
    public long MaxQueuedWriteBytes { get; set; } = 64L * 1024 * 1024;
    /// <summary>Ops committed in one transaction, summed over its writes (count; a single larger write still commits alone).</summary>
    public int MaxOpsPerCommit { get; set; } = 4096;
    /// <summary>Bytes of batches committed in one transaction (bytes; a single larger write still commits alone).</summary>
    public long MaxBytesPerCommit { get; set; } = 16L * 1024 * 1024;
    /// <summary>
    /// Server-wide budget of documents and log entries read for Subscribe and GetSnapshot and not
    /// yet sent (bytes). A reader waits for room before it reads its next chunk.
    /// </summary>
    public long MaxBufferedReadBytes { get; set; } = 64L * 1024 * 1024;
    /// <summary>
    /// Time a Subscribe stream may wait for its peer to take one event (HTTP/2 flow control) before
    /// the server ends the stream: a reader that never reads holds its chunk no longer than this.
    /// </summary>
    public TimeSpan SubscriberStallTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// Time within which the request message of a unary or server-streaming call must arrive whole
    /// (Kestrel's MinRequestBodyDataRate ends a body that stalls, not one that trickles).
    /// </summary>
    public TimeSpan RequestBodyTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// Time an AppendOps stream with nothing in flight may send nothing before the server ends it
    /// (UNAVAILABLE idle-timeout): an idle stream holds a stream slot and its buffers.
    /// </summary>
    public TimeSpan RequestIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);
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
        if (MaxQueuedWriteBytes <= 0) throw new ArgumentOutOfRangeException(nameof(MaxQueuedWriteBytes), "MaxQueuedWriteBytes must be > 0 bytes");
        if (MaxOpsPerCommit <= 0) throw new ArgumentOutOfRangeException(nameof(MaxOpsPerCommit), "MaxOpsPerCommit must be > 0");
        if (MaxBytesPerCommit <= 0) throw new ArgumentOutOfRangeException(nameof(MaxBytesPerCommit), "MaxBytesPerCommit must be > 0 bytes");
        if (MaxBufferedReadBytes <= 0) throw new ArgumentOutOfRangeException(nameof(MaxBufferedReadBytes), "MaxBufferedReadBytes must be > 0 bytes");
        if (SubscriberStallTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(SubscriberStallTimeout), "SubscriberStallTimeout must be > 0");
        if (RequestBodyTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RequestBodyTimeout), "RequestBodyTimeout must be > 0");
        if (RequestIdleTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RequestIdleTimeout), "RequestIdleTimeout must be > 0");
        if (PublicEndpoint is not null && !Capabilities.RefEndpoint.TryParse(PublicEndpoint, out _))
            throw new ArgumentException($"PublicEndpoint '{PublicEndpoint}' is not HOST:PORT (port 1-65535)", nameof(PublicEndpoint));
        if (CreatorToken is { Length: 0 }) throw new ArgumentException("CreatorToken must be null or non-empty", nameof(CreatorToken));
        Limits.Validate();
    }
}
