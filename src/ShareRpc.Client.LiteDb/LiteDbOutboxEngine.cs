using ShareRpc.Client.Outbox;

namespace ShareRpc.Client.LiteDb;

/// <summary>
/// The client outbox on LiteDB 5 (<c>ShareRpcClientOptions.OutboxEngine = new LiteDbOutboxEngine()</c>), for an
/// application that already embeds LiteDB. Same promises as the SQLite outbox on a process crash and, with
/// <see cref="OutboxOptions.FsyncEveryCommit"/> (default), on power loss: every commit is fsynced before it
/// returns. One process opens the file at a time (the second waits for it, then gets
/// <see cref="OutboxInUseException"/>); a password-protected (encrypted) LiteDB file is refused, since
/// encrypted LiteDB never fsyncs. docs/client.md, "Outbox stores", compares the two engines.
/// </summary>
public sealed class LiteDbOutboxEngine : OutboxEngine
{
    public override string Name => "litedb";

    /// <summary>How long an open waits for another process to close the file (as SQLite's busy_timeout of 10 s).</summary>
    internal TimeSpan LockWait { get; init; } = TimeSpan.FromSeconds(10);

    internal override IOutboxStore OpenStore(string fullPath, OutboxOptions options, TimeProvider time) =>
        LiteDbOutboxStore.Open(fullPath, options, time, LockWait);
}
