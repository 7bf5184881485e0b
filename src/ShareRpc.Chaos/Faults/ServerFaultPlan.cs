using Microsoft.Data.Sqlite;
using Npgsql;
using ShareRpc.Chaos.History;
using ShareRpc.Server;

namespace ShareRpc.Chaos.Faults;

/// <summary>
/// The server and storage faults of a schedule as <see cref="ServerFaultHooks"/>: the n-th batch read, the n-th
/// group commit and the n-th ack (counted from when the plan is armed) get the scheduled fault.
/// </summary>
public sealed class ServerFaultPlan
{
    /// <summary>SQLite's SQLITE_FULL result code.</summary>
    public const int SqliteFull = 13;

    /// <summary>PostgreSQL's SQLSTATE disk_full (class 53, insufficient resources).</summary>
    public const string PostgresDiskFull = "53100";

    private readonly FaultSchedule _schedule;
    private readonly OpHistory _history;
    private int _reads = -1;
    private int _commits = -1;
    private int _acks = -1;
    private volatile bool _armed;
    private readonly bool _postgres;

    /// <param name="schedule">The faults; the server's are those of actor "server".</param>
    /// <param name="history">Where each fired fault is recorded.</param>
    /// <param name="canary">Set <see cref="ServerFaultHooks.UnsafeAckBeforeCommit"/> (the canary's deliberate bug).</param>
    /// <param name="postgres">The server runs on PostgreSQL: disk-full throws SQLSTATE 53100 instead of SQLITE_FULL.</param>
    public ServerFaultPlan(FaultSchedule schedule, OpHistory history, bool canary = false, bool postgres = false)
    {
        _schedule = schedule;
        _history = history;
        _postgres = postgres;
        Hooks = new ServerFaultHooks
        {
            UnsafeAckBeforeCommit = canary,
            OnBatchRead = OnReadAsync,
            BeforeCommit = BeforeCommitAsync,
            BeforeAck = BeforeAckAsync,
        };
    }

    public ServerFaultHooks Hooks { get; }

    public void Arm() => _armed = true;

    public void Disarm() => _armed = false;

    private ScheduledFault? Next(string point, ref int counter) =>
        _armed ? _schedule.At("server", point, Interlocked.Increment(ref counter)) : null;

    /// <summary>The exception a full disk gives on COMMIT.</summary>
    public static SqliteException DiskFullException() => new("SQLite Error 13: 'database or disk is full'.", SqliteFull);

    /// <summary>
    /// The error PostgreSQL reports when it cannot extend a file on a full disk (SQLSTATE 53100): the statement
    /// fails and the transaction can only roll back. (A full disk while writing WAL at COMMIT is a PANIC that
    /// restarts PostgreSQL instead: a database crash, which the harness does not inject.)
    /// </summary>
    public static PostgresException PostgresDiskFullException() =>
        new("could not extend file \"base/16384/16400\": No space left on device", "ERROR", "ERROR", PostgresDiskFull);

    private Task<StreamFault> OnReadAsync(ServerBatchContext batch)
    {
        if (Next("read", ref _reads) is { Kind: FaultKind.ResetStream } f)
        {
            _history.Fault(f, "batch " + batch.BatchId);
            return Task.FromResult(StreamFault.Reset);
        }

        return Task.FromResult(StreamFault.None);
    }

    private Task BeforeCommitAsync(int writes)
    {
        switch (Next("commit", ref _commits))
        {
            case { Kind: FaultKind.FailBeforeCommit } f:
                _history.Fault(f, $"{writes} writes");
                throw new InvalidOperationException("injected fault: the server failed before commit");
            case { Kind: FaultKind.DiskFull } f:
                _history.Fault(f, $"{writes} writes");
                throw _postgres ? PostgresDiskFullException() : DiskFullException();
        }

        return Task.CompletedTask;
    }

    private async Task<StreamFault> BeforeAckAsync(ServerBatchContext batch)
    {
        switch (Next("ack", ref _acks))
        {
            case { Kind: FaultKind.StallAck } f:
                _history.Fault(f, "batch " + batch.BatchId);
                await Task.Delay(f.DelayMs).ConfigureAwait(false);
                return StreamFault.None;
            case { Kind: FaultKind.DieAfterCommit } f:
                _history.Fault(f, "batch " + batch.BatchId);
                return StreamFault.Abort;
        }

        return StreamFault.None;
    }
}
