using System.Threading.Channels;
using ShareRpc.Server.Storage;
using ShareRpc.Protocol;

namespace ShareRpc.Server.Apply;

/// <summary>
/// The single write path. Submitted writes (AppendOps batches from any number of streams,
/// CreateShare, Delegate, Revoke) queue up; the committer takes all that are waiting (up to
/// a limit) into ONE transaction and ONE commit (one fsync). Each write runs inside its own
/// savepoint: a write that throws is rolled back to its savepoint and fails alone, the others
/// commit. Results are released only after the commit is durable; if the commit fails, every
/// write of that group fails with UNAVAILABLE (nothing of it was applied, a retry is safe).
/// Writes run in submission order, so one stream's batches apply in the order it sent them.
/// </summary>
public sealed class GroupCommitter : IAsyncDisposable
{
    private readonly IShareStore _store;
    private readonly int _maxWritesPerCommit;
    private readonly Channel<IWork> _queue;
    private readonly Task _loop;
    private readonly ServerFaultHooks? _faults;

    public GroupCommitter(IShareStore store, int maxWritesPerCommit = 256, int maxQueued = 4096, ServerFaultHooks? faults = null)
    {
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

    /// <summary>Writes queued and not yet taken by the committer.</summary>
    internal int QueuedCount => _queue.Reader.Count;

    /// <summary>Raised after each durable commit with the number of writes it carried.</summary>
    public event Action<int>? Committed;

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
        var done = new List<IWork>(_maxWritesPerCommit);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            done.Clear();
            while (group.Count < _maxWritesPerCommit && _queue.Reader.TryRead(out var w))
            {
                if (w.CancellationToken.IsCancellationRequested) w.Cancel();
                else group.Add(w);
            }
            if (group.Count == 0) continue;

            IShareTransaction? tx = null;
            try
            {
                tx = await _store.BeginWriteAsync().ConfigureAwait(false);
                for (var i = 0; i < group.Count; i++)
                {
                    var w = group[i];
                    var savepoint = "w" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    await tx.SavepointAsync(savepoint).ConfigureAwait(false);
                    try
                    {
                        await w.RunAsync(tx).ConfigureAwait(false);
                        await tx.ReleaseSavepointAsync(savepoint).ConfigureAwait(false);
                        done.Add(w);
                        if (_faults?.UnsafeAckBeforeCommit == true) w.Publish(); // the canary's deliberate bug
                    }
                    catch (Exception e)
                    {
                        // Undo this write only; if even that fails, the whole group fails below.
                        await tx.RollbackToSavepointAsync(savepoint).ConfigureAwait(false);
                        await tx.ReleaseSavepointAsync(savepoint).ConfigureAwait(false);
                        w.Fail(e is ShareRpcException ? e : StorageFailure(e));
                    }
                }
                if (_faults?.BeforeCommit is { } beforeCommit) await beforeCommit(group.Count).ConfigureAwait(false);
                await tx.CommitAsync().ConfigureAwait(false);
                Interlocked.Increment(ref _commits);
                foreach (var w in done) w.Publish();
                Committed?.Invoke(done.Count);
            }
            catch (Exception e)
            {
                var failure = StorageFailure(e);
                foreach (var w in group) w.Fail(failure); // no-op for those already failed
            }
            finally
            {
                if (tx is not null)
                {
                    try
                    {
                        await tx.DisposeAsync().ConfigureAwait(false);
                    }
                    catch (Exception e)
                    {
                        // The committer must outlive a broken transaction; its writes have already failed.
                        var failure = StorageFailure(e);
                        foreach (var w in group) w.Fail(failure);
                    }
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
        Task RunAsync(IShareTransaction tx);
        void Publish();
        void Fail(Exception e);
        void Cancel();
    }

    private sealed class Work<T>(Func<IShareTransaction, CancellationToken, Task<T>> body, CancellationToken ct) : IWork
    {
        private T? _result;
        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationToken CancellationToken => ct;
        public async Task RunAsync(IShareTransaction tx) => _result = await body(tx, CancellationToken.None).ConfigureAwait(false);
        public void Publish() => Completion.TrySetResult(_result!);
        public void Fail(Exception e) => Completion.TrySetException(e);
        public void Cancel() => Completion.TrySetCanceled(ct);
    }
}
