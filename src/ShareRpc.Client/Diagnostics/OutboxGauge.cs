using ShareRpc.Client.Outbox;

namespace ShareRpc.Client.Diagnostics;

/// <summary>
/// One writer's backlog for the gauges: the pending count and the oldest pending op's enqueue
/// time, read from the outbox (exact, O(log n)) at most once per <see cref="RefreshEvery"/> and
/// only while something observes the gauges; a read in between returns the last figures, with the
/// age counted on to now. The hot paths (enqueue, ack) pay nothing for it.
/// </summary>
internal sealed class OutboxGauge(IOutboxStore outbox, string shareId, TimeProvider clock)
{
    /// <summary>How stale the figures may be.</summary>
    public static readonly TimeSpan RefreshEvery = TimeSpan.FromSeconds(1);

    private long _pending;
    private long _oldestMs = -1;
    private long _refreshedAt = long.MinValue;
    private int _refreshing;

    /// <summary>The last figures; starts a refresh in the background when they are older than <see cref="RefreshEvery"/>.</summary>
    public (long Pending, TimeSpan OldestAge) Read()
    {
        var stamp = Interlocked.Read(ref _refreshedAt);
        if ((stamp == long.MinValue || clock.GetElapsedTime(stamp) >= RefreshEvery) && Interlocked.CompareExchange(ref _refreshing, 1, 0) == 0)
        {
            _ = RefreshAsync();
        }

        var oldest = Interlocked.Read(ref _oldestMs);
        var age = oldest < 0 ? TimeSpan.Zero : clock.GetUtcNow() - DateTimeOffset.FromUnixTimeMilliseconds(oldest);
        return (Interlocked.Read(ref _pending), age < TimeSpan.Zero ? TimeSpan.Zero : age);
    }

    /// <summary>Reads the figures now (also on start, so the first observation after some work is right).</summary>
    public async Task RefreshAsync()
    {
        try
        {
            var status = await outbox.GetStatusAsync(shareId).ConfigureAwait(false);
            Interlocked.Exchange(ref _pending, Math.Max(0, status.PendingOps));
            Interlocked.Exchange(ref _oldestMs, status.PendingOps > 0 && status.OldestPendingEnqueuedAt is { } t ? t.ToUnixTimeMilliseconds() : -1);
            Interlocked.Exchange(ref _refreshedAt, clock.GetTimestamp());
        }
        catch (Exception)
        {
            // The outbox is closing or damaged: the sender reports that; the gauges keep their last figures.
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
    }
}
