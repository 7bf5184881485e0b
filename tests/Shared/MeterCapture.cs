using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace ShareRpc.TestSupport;

/// <summary>
/// Every measurement of one meter that carries the tag <c>sharerpc.instance</c> = the instance a
/// test owns (other tests' servers and clients run in the same process, on meters of the same
/// name): sums of counters by tag, histogram record counts, last gauge values. Start it before the
/// code under test creates its instruments, or let it pick up the already published ones (it does).
/// </summary>
public sealed class MeterCapture : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, string?> Tags)> _measurements = new();
    private readonly Func<string?> _instance;

    /// <param name="meterName">ShareRpc.Server or ShareRpc.Client.</param>
    /// <param name="instance">The instance tag to keep (read at each measurement: it may be known only once the server started).</param>
    public MeterCapture(string meterName, Func<string?> instance)
    {
        _instance = instance;
        _listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == meterName) l.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        _listener.Start();
    }

    /// <summary>The sum of <paramref name="instrument"/>'s measurements whose tags include <paramref name="tag"/> (key=value), if given.</summary>
    public double Sum(string instrument, string? tag = null) => Matching(instrument, tag).Sum(m => m.Value);

    /// <summary>How many measurements <paramref name="instrument"/> recorded (a histogram's count).</summary>
    public int Count(string instrument, string? tag = null) => Matching(instrument, tag).Count();

    /// <summary>The values recorded, in order.</summary>
    public IReadOnlyList<double> Values(string instrument, string? tag = null) => [.. Matching(instrument, tag).Select(m => m.Value)];

    /// <summary>Reads the observable instruments (gauges) now; their values join the measurements.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    /// <summary>Polls until <paramref name="condition"/> holds (gauges observed each round); throws with the measurements if it does not in time.</summary>
    public async Task WaitUntilAsync(Func<MeterCapture, bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        await Wait.UntilAsync(
            () =>
            {
                Observe();
                return condition(this);
            },
            timeout ?? TimeSpan.FromSeconds(30),
            () => $"{what ?? "metric condition"} not met; measured:\n" + string.Join("\n",
                _measurements.GroupBy(m => m.Instrument).Select(g => $"{g.Key}: n={g.Count()} sum={g.Sum(m => m.Value)} last={g.Last().Value}")));
    }

    public void Dispose() => _listener.Dispose();

    private IEnumerable<(string Instrument, double Value, Dictionary<string, string?> Tags)> Matching(string instrument, string? tag)
    {
        string? key = null, value = null;
        if (tag is not null)
        {
            var eq = tag.IndexOf('=', StringComparison.Ordinal);
            (key, value) = (tag[..eq], tag[(eq + 1)..]);
        }

        return _measurements.Where(m => m.Instrument == instrument && (key is null || (m.Tags.TryGetValue(key, out var v) && v == value)));
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var map = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var t in tags) map[t.Key] = t.Value?.ToString();
        var want = _instance();
        if (want is null || !map.TryGetValue("sharerpc.instance", out var got) || got != want) return;
        _measurements.Enqueue((instrument.Name, value, map));
    }
}
