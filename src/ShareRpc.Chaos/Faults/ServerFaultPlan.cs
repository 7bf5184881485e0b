using Microsoft.Data.Sqlite;
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

    private readonly FaultSchedule _schedule;
    private readonly OpHistory _history;
    private int _reads = -1;
    private int _commits = -1;
    private int _acks = -1;
    private volatile bool _armed;

    public ServerFaultPlan(FaultSchedule schedule, OpHistory history, bool canary = false)
    {
        _schedule = schedule;
        _history = history;
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
                throw DiskFullException();
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
