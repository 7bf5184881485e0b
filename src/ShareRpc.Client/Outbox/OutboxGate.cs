// The lock every outbox engine's work runs under, and its one-time close.
using Google.Protobuf;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// One store's lock (also the group commit's, <see cref="GroupCommitQueue"/>): runs work under it,
/// turns the engine's damage errors and stored bytes that no longer parse into an
/// <see cref="OutboxCorruptException"/> naming the file, and closes the store once. After the close
/// the lock is released, not kept: a call that comes late (an <c>Acked</c> awaited after dispose)
/// fails at once with <see cref="ObjectDisposedException"/> instead of waiting forever.
/// </summary>
internal sealed class OutboxGate(object owner, Func<string, Exception, OutboxCorruptException> damaged, Func<Exception, OutboxCorruptException?> engineDamage, Action? afterEach = null)
{
    private bool _closed; // under Lock

    public SemaphoreSlim Lock { get; } = new(1, 1);

    /// <param name="work">Runs on the store under the lock; <c>afterEach</c> follows it, the lock released.</param>
    public async Task<T> RunAsync<T>(Func<T> work)
    {
        await Lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_closed, owner);
            return work();
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw damaged("a stored message does not parse: " + ex.Message, ex);
        }
        catch (Exception ex) when (engineDamage(ex) is { } damage)
        {
            throw damage;
        }
        finally
        {
            Lock.Release();
            afterEach?.Invoke();
        }
    }

    public Task RunAsync(Action work) => RunAsync(() =>
    {
        work();
        return true;
    });

    /// <summary>Runs <paramref name="close"/> once, under the lock; later calls return at once.</summary>
    public async ValueTask CloseAsync(Func<ValueTask> close)
    {
        await Lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            await close().ConfigureAwait(false);
        }
        finally
        {
            Lock.Release();
        }
    }
}
