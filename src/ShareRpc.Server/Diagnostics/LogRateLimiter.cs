namespace ShareRpc.Server.Diagnostics;

/// <summary>
/// At most one log line per key (a refusal's reason, a limit's name) per <see cref="Interval"/>: a
/// peer that is refused a million times a minute costs one line a minute, and that line says how
/// many were left out. Time comes from the engine's <see cref="TimeProvider"/>.
/// </summary>
internal sealed class LogRateLimiter(TimeProvider clock, TimeSpan interval)
{
    private readonly Dictionary<string, (long LastTimestamp, long Suppressed)> _keys = new(StringComparer.Ordinal);

    /// <summary>Lines per key per this long at most.</summary>
    public TimeSpan Interval { get; set; } = interval;

    /// <summary>True when a line for <paramref name="key"/> may be written now; <paramref name="suppressed"/> is how many were left out since the last one.</summary>
    public bool TryAcquire(string key, out long suppressed)
    {
        var now = clock.GetTimestamp();
        lock (_keys)
        {
            if (_keys.TryGetValue(key, out var entry) && clock.GetElapsedTime(entry.LastTimestamp, now) < Interval)
            {
                _keys[key] = (entry.LastTimestamp, entry.Suppressed + 1);
                suppressed = 0;
                return false;
            }

            suppressed = entry.Suppressed;
            _keys[key] = (now, 0); // keys are a closed set (reasons, limit names): the map stays small
            return true;
        }
    }
}
