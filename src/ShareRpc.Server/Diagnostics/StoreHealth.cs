using ShareRpc.Server.Storage;

namespace ShareRpc.Server.Diagnostics;

/// <summary>
/// Whether the store answers, for the health service (docs/server.md, "Health"): a cheap read
/// (<see cref="IShareStore.ProbeAsync"/>) bounded by <see cref="ProbeTimeout"/>, its result kept
/// for <see cref="CacheFor"/> so that a balancer polling every second costs one probe a second
/// however many ask, and never more than one probe at a time. A health check therefore waits at
/// most <see cref="ProbeTimeout"/>. Changes are logged once each way (StoreUnavailable, StoreAvailable).
/// </summary>
internal sealed class StoreHealth(IShareStore store, TimeProvider clock, Func<ServerDiagnostics> diagnostics)
{
    /// <summary>How long one probe result stands.</summary>
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(1);

    /// <summary>A probe that has not answered by then counts as a failure (PostgreSQL unreachable, a network that drops packets).</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly object _lock = new();
    private Task<string?>? _running;
    private long _checkedAt;
    private string? _error;
    private bool _known;
    private long _downSince;

    /// <summary>1 while the store answered the last probe, 0 while it did not, null before the first.</summary>
    public int? Up
    {
        get
        {
            lock (_lock) return _known ? (_error is null ? 1 : 0) : null;
        }
    }

    /// <summary>Null when the store answers; else why not. Reuses a fresh result, or joins the probe under way.</summary>
    public async Task<string?> CheckAsync()
    {
        Task<string?> probe;
        lock (_lock)
        {
            if (_known && clock.GetElapsedTime(_checkedAt) < CacheFor) return _error;
            probe = _running ??= ProbeAsync();
        }

        return await probe.ConfigureAwait(false);
    }

    private async Task<string?> ProbeAsync()
    {
        await Task.Yield(); // the caller's lock is released before the store is touched
        string? error;
        using (var timeout = new CancellationTokenSource(ProbeTimeout, clock))
        {
            try
            {
                await store.ProbeAsync(timeout.Token).WaitAsync(ProbeTimeout, clock).ConfigureAwait(false);
                error = null;
            }
            catch (TimeoutException)
            {
                error = $"no answer within {ProbeTimeout.TotalSeconds:0.#} s";
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                error = $"no answer within {ProbeTimeout.TotalSeconds:0.#} s";
            }
            catch (Exception e)
            {
                error = e.GetType().Name + ": " + e.Message;
            }
        }

        Record(error);
        return error;
    }

    private void Record(string? error)
    {
        bool wasUp, wasKnown;
        long downSince;
        lock (_lock)
        {
            wasKnown = _known;
            wasUp = _error is null;
            downSince = _downSince;
            _error = error;
            _known = true;
            _checkedAt = clock.GetTimestamp();
            if (error is not null && (wasUp || !wasKnown)) _downSince = _checkedAt;
            _running = null;
        }

        var log = diagnostics().Logger;
        if (error is not null && (wasUp || !wasKnown)) ServerLog.StoreUnavailable(log, error);
        else if (error is null && wasKnown && !wasUp) ServerLog.StoreAvailable(log, clock.GetElapsedTime(downSince));
    }
}
