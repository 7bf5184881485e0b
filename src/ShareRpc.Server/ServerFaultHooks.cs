namespace ShareRpc.Server;

/// <summary>What a stream-level server fault does to the AppendOps stream it fires on.</summary>
public enum StreamFault
{
    /// <summary>Nothing: the stream goes on.</summary>
    None = 0,

    /// <summary>RST_STREAM (CANCEL) on this call only; the connection stays up.</summary>
    Reset = 1,

    /// <summary>Abort the request as a dying server would (Kestrel aborts the HTTP/2 stream with INTERNAL_ERROR).</summary>
    Abort = 2,
}

/// <summary>The AppendOps batch a stream-level fault hook is called for.</summary>
public sealed record ServerBatchContext(string ShareId, string CapabilityId, string BatchId, string ProducerId);

/// <summary>
/// Failure-injection points in the server, for chaos harnesses and tests (see docs/chaos.md). Off unless
/// set in code with <see cref="ShareRpcServerOptions.EnableFaultInjection"/>: nothing on the wire and no
/// configuration key can switch them on.
/// </summary>
public sealed class ServerFaultHooks
{
    /// <summary>
    /// Runs in the group committer after every write of a group has run, right before COMMIT, with the
    /// number of writes in the group. Throwing fails the commit: nothing of the group is applied and each
    /// write fails <c>UNAVAILABLE storage</c> (a retry is safe). Throw a <c>SqliteException</c> with
    /// SQLITE_FULL (13) to simulate a full disk (on PostgreSQL, a <c>PostgresException</c> with SQLSTATE 53100).
    /// </summary>
    public Func<int, Task>? BeforeCommit { get; set; }

    /// <summary>Runs when an AppendOps stream has read a batch, before it is queued. <see cref="StreamFault.Reset"/> / <see cref="StreamFault.Abort"/> end the stream there: the batch is not applied.</summary>
    public Func<ServerBatchContext, Task<StreamFault>>? OnBatchRead { get; set; }

    /// <summary>
    /// Runs after a batch has committed and before its ack is written: delay here to stall the ack, return
    /// <see cref="StreamFault.Abort"/> to die after the commit and before the ack, or <see cref="StreamFault.Reset"/>.
    /// </summary>
    public Func<ServerBatchContext, Task<StreamFault>>? BeforeAck { get; set; }

    /// <summary>
    /// CANARY ONLY — deliberately broken: the committer releases each write's result (the ack) before the
    /// commit, as a queue that acks before fsync does. With a failed commit, acked ops are lost; the chaos
    /// checker must catch it (<c>sharerpc chaos --canary</c>). Never set this outside a harness.
    /// </summary>
    public bool UnsafeAckBeforeCommit { get; set; }
}
