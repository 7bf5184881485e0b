using System.Threading.Channels;
using ShareRpc.Server.Storage;
using Sharerpc.V1;

namespace ShareRpc.Server.Apply;

/// <summary>
/// The single write path. Submitted writes (AppendOps batches from any number of streams,
/// CreateShare, Delegate, Revoke) queue up; the committer takes all that are waiting (up to
/// a limit) into ONE transaction and ONE commit (one fsync). Each write runs inside its own
/// savepoint: a write that throws is rolled back to its savepoint and fails alone, the others
/// commit. Results are released only after the commit is durable; if the commit fails, every
/// write of that group fails with UNAVAILABLE (nothing of it was applied, a retry is safe) —
/// unless the store calls the error transient (a deadlock or race with another server process
/// on a shared database), in which case the whole group runs again, up to MaxCommitAttempts.
/// Writes run in submission order, so one stream's batches apply in the order it sent them.
/// </summary>
internal sealed class GroupCommitter : IAsyncDisposable
{
    private readonly IShareStore _store;
    private readonly int _maxWritesPerCommit;
    private readonly Channel<IWork> _queue;
    private readonly Task _loop;
    private readonly ServerFaultHooks? _faults;

    private readonly int _maxAttempts;

    public GroupCommitter(IShareStore store, int maxWritesPerCommit = 256, int maxQueued = 4096, ServerFaultHooks? faults = null, int maxAttempts = 8)
    {
        _maxAttempts = maxAttempts;
        _store = store;
        _faults = faults;
        _maxWritesPerCommit = maxWritesPerCommit;
        _queue = Channel.CreateBounded<IWork>(new BoundedChannelOptions(maxQueued)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Transactions committed so far (for tests and metrics).</summary>
    public long Commits => Interlocked.Read(ref _commits);
    private long _commits;

    /// <summary>Groups rerun after a transient store error (see <see cref="IShareStore.IsTransient"/>).</summary>
    public long Retries => Interlocked.Read(ref _retries);
    private long _retries;

    /// <summary>Writes queued and not yet taken by the committer.</summary>
    internal int QueuedCount => _queue.Reader.Count;

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
    public async Task<T> SubmitAsync<T>(Func<IShareTransaction, CancellationToken, Task<T>> work, CancellationToken ct = default)
    {
        var committed = await EnqueueAsync(work, ct).ConfigureAwait(false);
        return await committed.ConfigureAwait(false);
    }

    /// <summary>
    /// Queues <paramref name="work"/> and returns, once it is queued, the task of its committed result.
    /// A caller that enqueues several writes one after the other gets them applied in that order
    /// (this is how one AppendOps stream pipelines its batches).
    /// </summary>
    public async Task<Task<T>> EnqueueAsync<T>(Func<IShareTransaction, CancellationToken, Task<T>> work, CancellationToken ct = default)
    {
        var item = new Work<T>(work, ct);
        try
        {
            await _queue.Writer.WriteAsync(item, ct).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ShareRpcException(ShareRpcStatus.Unavailable, Reasons.ShuttingDown, "the server is shutting down");
        }
        return item.Completion.Task;
    }

    private async Task RunAsync()
    {
        var group = new List<IWork>(_maxWritesPerCommit);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < _maxWritesPerCommit && _queue.Reader.TryRead(out var w))
            {
                if (w.CancellationToken.IsCancellationRequested) w.Cancel();
                else group.Add(w);
            }
            if (group.Count == 0) continue;

            for (var attempt = 1; ; attempt++)
            {
                var outcome = await TryCommitAsync(group).ConfigureAwait(false);
                if (outcome is null)
                {
                    Interlocked.Increment(ref _commits);
                    foreach (var w in group) w.Publish(); // a result, or the write's own failure
                    Committed?.Invoke(group.Count(w => w.Succeeded));
                    break;
                }
                if (attempt < _maxAttempts && _store.IsTransient(outcome))
                {
                    // A deadlock or uniqueness race with another server process on the same
                    // database: nothing of the group was applied, so run all of it again.
                    Interlocked.Increment(ref _retries);
                    Retried?.Invoke(group.Count, attempt, _maxAttempts, outcome);
                    await Task.Delay(Random.Shared.Next(1, 5 * attempt)).ConfigureAwait(false);
                    continue;
                }
                var failure = StorageFailure(outcome);
                Failed?.Invoke(group.Count, attempt, outcome);
                foreach (var w in group) w.Fail(failure);
                break;
            }
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
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private interface IWork
    {
        CancellationToken CancellationToken { get; }
        bool Succeeded { get; }
        void Reset();
        Task RunAsync(IShareTransaction tx);
        void SetFailure(Exception e);
        void Publish();
        void Fail(Exception e);
        void Cancel();
    }

    private sealed class Work<T>(Func<IShareTransaction, CancellationToken, Task<T>> body, CancellationToken ct) : IWork
    {
        private T? _result;
        private Exception? _failure;
        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationToken CancellationToken => ct;
        public bool Succeeded => _failure is null;
        public void Reset() => (_result, _failure) = (default, null);
        public async Task RunAsync(IShareTransaction tx) => _result = await body(tx, CancellationToken.None).ConfigureAwait(false);
        public void SetFailure(Exception e) => _failure = e;

        /// <summary>Releases the committed result, or the write's own failure (it changed nothing).</summary>
        public void Publish()
        {
            if (_failure is null) Completion.TrySetResult(_result!);
            else Completion.TrySetException(_failure);
        }

        public void Fail(Exception e) => Completion.TrySetException(e);
        public void Cancel() => Completion.TrySetCanceled(ct);
    }
}
