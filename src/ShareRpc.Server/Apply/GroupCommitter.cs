using System.Threading.Channels;
using ShareRpc.Server.Storage;
using Sharerpc.V1;

namespace ShareRpc.Server.Apply;

/// <summary>
/// The single write path. Submitted writes (AppendOps batches from any number of streams,
/// CreateShare, Delegate, Revoke) queue up; the committer takes waiting writes (up to
/// MaxWritesPerCommit, MaxOpsPerCommit and MaxBytesPerCommit) into ONE transaction and ONE commit
/// (one fsync). Each write runs inside its own savepoint: a write that throws is rolled back to its
/// savepoint and fails alone, the others commit. Results are released only after the commit is
/// durable; if the commit fails, every write of that group fails with UNAVAILABLE (nothing of it was
/// applied, a retry is safe) — unless the store calls the error transient (a deadlock or race with
/// another server process on a shared database), in which case the whole group runs again, up to
/// MaxCommitAttempts.
/// <para>
/// Writes of one share run in submission order, so one stream's batches apply in the order it sent
/// them. Shares take turns by cost (<see cref="ShareTurns{T}"/>: deficit round robin over bytes and
/// ops), so a share with a deep queue of heavy batches delays another share's write by about one
/// bounded group, never by its whole queue (docs/design.md, "Limits"). The queue is bounded in writes
/// (MaxQueuedWrites) and in bytes (MaxQueuedWriteBytes, let in by share in turn and by bytes:
/// <see cref="FairByteBudget"/>): a submitter waits for room, which for an AppendOps stream means it
/// stops reading, and HTTP/2 flow control stops its peer.
/// </para>
/// </summary>
internal sealed class GroupCommitter : IAsyncDisposable
{
    private readonly IShareStore _store;
    private readonly CommitLimits _limits;
    private readonly Channel<IWork> _incoming = Channel.CreateUnbounded<IWork>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ShareTurns<IWork> _turns = new(w => w.ShareKey, w => w.Bytes, w => w.Ops);
    private readonly Task _loop;
    private readonly ServerFaultHooks? _faults;
    private int _pending;

    /// <summary>How big one group and the queue may get (ShareRpcServerOptions).</summary>
    internal sealed record CommitLimits(int MaxWritesPerCommit = 256, int MaxOpsPerCommit = 4096, long MaxBytesPerCommit = 8L << 20,
        int MaxQueuedWrites = 4096, long MaxQueuedWriteBytes = 32L << 20, int MaxAttempts = 8);

    public GroupCommitter(IShareStore store, CommitLimits? limits = null, ServerFaultHooks? faults = null)
    {
        _store = store;
        _faults = faults;
        _limits = limits ?? new CommitLimits();
        QueuedWrites = new ByteBudget(_limits.MaxQueuedWrites, nameof(_limits.MaxQueuedWrites));
        QueuedBytes = new FairByteBudget(_limits.MaxQueuedWriteBytes, nameof(_limits.MaxQueuedWriteBytes));
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Writes queued or committing (one unit each), bounded by MaxQueuedWrites.</summary>
    public ByteBudget QueuedWrites { get; }

    /// <summary>
    /// Bytes of batches queued or committing, bounded by MaxQueuedWriteBytes (what tests assert a bound
    /// on); let in fairly by share, so one share's large batches do not hold another's small ones back.
    /// </summary>
    public FairByteBudget QueuedBytes { get; }

    /// <summary>Transactions committed so far (for tests and metrics).</summary>
    public long Commits => Interlocked.Read(ref _commits);
    private long _commits;

    /// <summary>Groups rerun after a transient store error (see <see cref="IShareStore.IsTransient"/>).</summary>
    public long Retries => Interlocked.Read(ref _retries);
    private long _retries;

    /// <summary>Writes queued and not yet taken by the committer.</summary>
    internal int QueuedCount => Volatile.Read(ref _pending);

    /// <summary>Raised after each durable commit with the number of writes it carried.</summary>
    public event Action<int>? Committed;

    /// <summary>Raised before a group runs again after a transient error: its writes, the attempt that failed, the most attempts, the error (logs, metrics).</summary>
    public event Action<int, int, int, Exception>? Retried;

    /// <summary>Raised when a group fails for good (every write answered UNAVAILABLE storage): its writes, the attempts made, the error.</summary>
    public event Action<int, int, Exception>? Failed;

    /// <summary>
    /// Runs <paramref name="work"/> in the next group transaction and returns its result once committed.
    /// Cancelling before the write starts skips it; once started it completes with the group.
    /// </summary>
    public async Task<T> SubmitAsync<T>(Func<IShareTransaction, CancellationToken, Task<T>> work, CancellationToken ct = default, string? shareId = null)
    {
        var committed = await EnqueueAsync(work, ct, shareId).ConfigureAwait(false);
        return await committed.ConfigureAwait(false);
    }

    /// <summary>
    /// Queues <paramref name="work"/> (waiting for room in the queue: one write and
    /// <paramref name="bytes"/>) and returns, once it is queued, the task of its committed result.
    /// Writes of one <paramref name="shareId"/> enqueued one after the other apply in that order
    /// (this is how one AppendOps stream pipelines its batches).
    /// </summary>
    public async Task<Task<T>> EnqueueAsync<T>(Func<IShareTransaction, CancellationToken, Task<T>> work, CancellationToken ct = default,
        string? shareId = null, int ops = 0, long bytes = 0)
    {
        await QueuedWrites.AcquireAsync(1, ct).ConfigureAwait(false);
        try
        {
            await QueuedBytes.AcquireAsync(bytes, shareId ?? "", ct).ConfigureAwait(false);
        }
        catch
        {
            QueuedWrites.Release(1);
            throw;
        }
        var item = new Work<T>(work, ct, shareId ?? "", ops, bytes, Dequeued);
        Interlocked.Increment(ref _pending);
        if (!_incoming.Writer.TryWrite(item))
        {
            item.Cancel(); // gives the room back
            throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.ShuttingDown, "the server is shutting down");
        }
        return item.Completion.Task;
    }

    /// <summary>A write's room in the queue comes back when it has its outcome (committed, failed or cancelled).</summary>
    private void Dequeued(IWork w)
    {
        QueuedBytes.Release(w.Bytes);
        QueuedWrites.Release(1);
    }

    private async Task RunAsync()
    {
        var group = new List<IWork>(_limits.MaxWritesPerCommit);
        while (_turns.Count > 0 || await _incoming.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (_incoming.Reader.TryRead(out var w)) _turns.Add(w);
            TakeGroup(group);
            if (group.Count == 0) continue;
            await CommitGroupAsync(group).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The next group: writes in the shares' turns (<see cref="ShareTurns{T}"/>), until a limit on
    /// writes, ops or bytes would be passed (the first write always goes, however large).
    /// </summary>
    private void TakeGroup(List<IWork> group)
    {
        group.Clear();
        long ops = 0, bytes = 0;
        while (group.Count < _limits.MaxWritesPerCommit
               && _turns.TryTake(w => group.Count == 0 || (ops + w.Ops <= _limits.MaxOpsPerCommit && bytes + w.Bytes <= _limits.MaxBytesPerCommit), out var next))
        {
            Interlocked.Decrement(ref _pending);
            if (next.CancellationToken.IsCancellationRequested)
            {
                next.Cancel();
                continue;
            }
            group.Add(next);
            ops += next.Ops;
            bytes += next.Bytes;
        }
    }

    private async Task CommitGroupAsync(List<IWork> group)
    {
        for (var attempt = 1; ; attempt++)
        {
            var outcome = await TryCommitAsync(group).ConfigureAwait(false);
            if (outcome is null)
            {
                Interlocked.Increment(ref _commits);
                foreach (var w in group) w.Publish(); // a result, or the write's own failure
                Committed?.Invoke(group.Count(w => w.Succeeded));
                return;
            }
            if (attempt < _limits.MaxAttempts && _store.IsTransient(outcome))
            {
                // A deadlock or uniqueness race with another server process on the same
                // database: nothing of the group was applied, so run all of it again.
                Interlocked.Increment(ref _retries);
                Retried?.Invoke(group.Count, attempt, _limits.MaxAttempts, outcome);
                await Task.Delay(Random.Shared.Next(1, 5 * attempt)).ConfigureAwait(false);
                continue;
            }
            var failure = StorageFailure(outcome);
            Failed?.Invoke(group.Count, attempt, outcome);
            foreach (var w in group) w.Fail(failure);
            return;
        }
    }

    /// <summary>One attempt at the group: null once committed, else the error that aborted it.</summary>
    private async Task<Exception?> TryCommitAsync(List<IWork> group)
    {
        IShareTransaction? tx = null;
        try
        {
            tx = await _store.BeginWriteAsync().ConfigureAwait(false);
            for (var i = 0; i < group.Count; i++)
            {
                var w = group[i];
                w.Reset();
                var savepoint = "w" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await tx.SavepointAsync(savepoint).ConfigureAwait(false);
                try
                {
                    await w.RunAsync(tx).ConfigureAwait(false);
                    await tx.ReleaseSavepointAsync(savepoint).ConfigureAwait(false);
                    if (_faults?.UnsafeAckBeforeCommit == true) w.Publish(); // the canary's deliberate bug
                }
                catch (Exception e) when (!_store.IsTransient(e))
                {
                    // Undo this write only; if even that fails, the whole group fails below.
                    await tx.RollbackToSavepointAsync(savepoint).ConfigureAwait(false);
                    await tx.ReleaseSavepointAsync(savepoint).ConfigureAwait(false);
                    w.SetFailure(e is ShareRpcException ? e : StorageFailure(e));
                }
            }
            if (_faults?.BeforeCommit is { } beforeCommit) await beforeCommit(group.Count).ConfigureAwait(false);
            await tx.CommitAsync().ConfigureAwait(false);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
        finally
        {
            if (tx is not null)
            {
                try
                {
                    await tx.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // The committer must outlive a broken transaction; the attempt's error is reported instead.
                }
            }
        }
    }

    private static ShareRpcException StorageFailure(Exception e) =>
        new(ShareRpcStatus.Unavailable, Reasons.Storage, "the write could not be committed; nothing of it was applied, retry", inner: e);

    public async ValueTask DisposeAsync()
    {
        _incoming.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private interface IWork
    {
        CancellationToken CancellationToken { get; }
        string ShareKey { get; }
        int Ops { get; }
        long Bytes { get; }
        bool Succeeded { get; }
        void Reset();
        Task RunAsync(IShareTransaction tx);
        void SetFailure(Exception e);
        void Publish();
        void Fail(Exception e);
        void Cancel();
    }

    private sealed class Work<T>(Func<IShareTransaction, CancellationToken, Task<T>> body, CancellationToken ct, string shareKey, int ops, long bytes,
        Action<IWork> dequeued) : IWork
    {
        private T? _result;
        private Exception? _failure;
        private int _done;
        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationToken CancellationToken => ct;
        public string ShareKey => shareKey;
        public int Ops => ops;
        public long Bytes => bytes;
        public bool Succeeded => _failure is null;
        public void Reset() => (_result, _failure) = (default, null);
        public async Task RunAsync(IShareTransaction tx) => _result = await body(tx, CancellationToken.None).ConfigureAwait(false);
        public void SetFailure(Exception e) => _failure = e;

        /// <summary>Releases the committed result, or the write's own failure (it changed nothing).</summary>
        public void Publish()
        {
            Done();
            if (_failure is null) Completion.TrySetResult(_result!);
            else Completion.TrySetException(_failure);
        }

        public void Fail(Exception e)
        {
            Done();
            Completion.TrySetException(e);
        }

        public void Cancel()
        {
            Done();
            Completion.TrySetCanceled(ct);
        }

        /// <summary>Once: the room this write took in the queue comes back before its submitter hears the outcome.</summary>
        private void Done()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) dequeued(this);
        }
    }
}
