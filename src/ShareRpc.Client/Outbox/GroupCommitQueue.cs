// Group commit for every outbox engine (docs/design.md, "Client: the durable outbox": concurrent enqueues share one commit).
using System.Threading.Channels;
using Sharerpc.V1;

namespace ShareRpc.Client.Outbox;

/// <summary>One op waiting for its commit; <see cref="Done"/> completes once it is durable (or refused).</summary>
internal sealed record EnqueueRequest(string ShareId, Op Op)
{
    public TaskCompletionSource<EnqueuedOp> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// The enqueue path shared by the engines: checks the op, gives it an id (UUIDv7) unless the caller set one,
/// and queues it for one loop that gathers every request waiting when a commit starts into that commit (and
/// its fsync), under the store's lock. The engine's <c>commitGroup</c> writes a group in one transaction and
/// completes each request after the commit; if it throws, nothing of the group is durable and every caller
/// learns it (disk full, a damaged file, …).
/// </summary>
internal sealed class GroupCommitQueue
{
    private readonly Channel<EnqueueRequest> _requests;
    private readonly int _maxPerCommit;
    private readonly SemaphoreSlim _storeLock;
    private readonly Action<List<EnqueueRequest>> _commitGroup;
    private readonly Func<Exception, Exception> _describe;
    private readonly Task _loop;

    /// <param name="options">MaxQueuedEnqueues (back-pressure) and MaxOpsPerCommit.</param>
    /// <param name="storeLock">The store's lock, held for each commit.</param>
    /// <param name="commitGroup">Writes a group in one commit, then completes its requests.</param>
    /// <param name="describe">Turns an engine's error into what callers see (its damage as OutboxCorruptException).</param>
    public GroupCommitQueue(OutboxOptions options, SemaphoreSlim storeLock, Action<List<EnqueueRequest>> commitGroup, Func<Exception, Exception> describe)
    {
        _requests = Channel.CreateBounded<EnqueueRequest>(new BoundedChannelOptions(options.MaxQueuedEnqueues) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _maxPerCommit = options.MaxOpsPerCommit;
        _storeLock = storeLock;
        _commitGroup = commitGroup;
        _describe = describe;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Makes the op durable and returns its id and seq; concurrent calls share one commit.</summary>
    public async Task<EnqueuedOp> EnqueueAsync(string shareId, Op op)
    {
        ArgumentException.ThrowIfNullOrEmpty(shareId);
        ArgumentNullException.ThrowIfNull(op);
        var request = new EnqueueRequest(shareId, op.Clone());
        OutboxRows.Identify(request.Op, "The op", nameof(op));

        try
        {
            await _requests.Writer.WriteAsync(request).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException("outbox");
        }

        return await request.Done.Task.ConfigureAwait(false);
    }

    /// <summary>Refuses new enqueues and waits for the ones queued to be committed.</summary>
    public Task CompleteAsync()
    {
        _requests.Writer.TryComplete();
        return _loop;
    }

    private async Task LoopAsync()
    {
        var reader = _requests.Reader;
        var group = new List<EnqueueRequest>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < _maxPerCommit && reader.TryRead(out var r))
            {
                group.Add(r);
            }

            await _storeLock.WaitAsync().ConfigureAwait(false);
            try
            {
                _commitGroup(group);
            }
            catch (Exception ex)
            {
                var error = _describe(ex);
                foreach (var r in group)
                {
                    r.Done.TrySetException(error);
                }
            }
            finally
            {
                _storeLock.Release();
            }
        }
    }
}
