using System.Diagnostics.Metrics;

namespace ShareRpc.Server.Diagnostics;

/// <summary>
/// The server's instruments on the meter <c>ShareRpc.Server</c>, one reporter per engine (as
/// Npgsql's MetricsReporter is per data source): OpenTelemetry names, UCUM units, a description
/// each, and every measurement tagged with <see cref="InstanceTag"/> so that two engines in one
/// process (or several servers behind one collector) stay apart. The catalogue with what to do
/// when each moves: docs/operate.md. Nothing is measured unless something
/// listens (a MeterListener, dotnet-counters, OpenTelemetry's AddMeter).
/// </summary>
internal sealed class ServerMetrics : IDisposable
{
    public const string InstanceTag = "sharerpc.instance";
    public const string Ops = "sharerpc.server.ops";
    public const string CommitDuration = "sharerpc.server.batch.commit.duration";
    public const string Streams = "sharerpc.server.streams";
    public const string Fenced = "sharerpc.server.fenced";
    public const string Refusals = "sharerpc.server.refusals";
    public const string CommitRetries = "sharerpc.server.commit.retries";
    public const string CommitFailures = "sharerpc.server.commit.failures";
    public const string LimitsReached = "sharerpc.server.limits.reached";
    public const string QueuedWrites = "sharerpc.server.commit.queued";
    public const string StoreUp = "sharerpc.server.store.up";

    private readonly Meter _meter;
    private readonly KeyValuePair<string, object?> _instance;
    private readonly Counter<long> _ops;
    private readonly Histogram<double> _commitDuration;
    private readonly UpDownCounter<long> _streams;
    private readonly Counter<long> _fenced;
    private readonly Counter<long> _refusals;
    private readonly Counter<long> _commitRetries;
    private readonly Counter<long> _commitFailures;
    private readonly Counter<long> _limits;
    private long _appendStreams;
    private long _subscribeStreams;

    /// <param name="instance">This engine's name in every measurement.</param>
    /// <param name="queuedWrites">Writes waiting for the group committer, read when observed.</param>
    /// <param name="storeUp">1 while the store answers the health probe, 0 while it does not; null before the first probe.</param>
    public ServerMetrics(string instance, Func<long> queuedWrites, Func<int?> storeUp)
    {
        Instance = instance;
        _instance = new(InstanceTag, instance);
        _meter = new Meter(ShareRpcServerDiagnostics.MeterName, typeof(ServerMetrics).Assembly.GetName().Version?.ToString());
        _ops = _meter.CreateCounter<long>(Ops, "{op}", "Ops answered in acks, by outcome: applied, duplicate (applied before; nothing applied twice) or rejected (with a reason).");
        _commitDuration = _meter.CreateHistogram<double>(CommitDuration, "s", "From a batch queued to its group commit being durable: the server's share of an op's enqueue-to-ack time.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _streams = _meter.CreateUpDownCounter<long>(Streams, "{stream}", "Open streams, by kind: append (AppendOps) or subscribe.");
        _fenced = _meter.CreateCounter<long>(Fenced, "{stream}", "Streams the fence ended because a revoke moved their share's epoch, by kind.");
        _refusals = _meter.CreateCounter<long>(Refusals, "{call}", "Calls and streams refused with a ShareRpc reason (sharerpc-reason), by reason and gRPC status.");
        _commitRetries = _meter.CreateCounter<long>(CommitRetries, "{commit}", "Group commits run again after losing a race with another server on the same database.");
        _commitFailures = _meter.CreateCounter<long>(CommitFailures, "{commit}", "Group commits that failed for good: their writes were answered UNAVAILABLE storage.");
        _limits = _meter.CreateCounter<long>(LimitsReached, "{event}", "Times a hostile-load limit stopped a peer, by limit name.");
        _meter.CreateObservableGauge(QueuedWrites, () => new Measurement<long>(queuedWrites(), _instance), "{write}",
            "Writes (batches, creates, delegations, revokes) waiting for the group committer.");
        _meter.CreateObservableGauge(StoreUp, () => storeUp() is { } up ? [new Measurement<int>(up, _instance)] : Array.Empty<Measurement<int>>(), "1",
            "1 while the store answers the health probe, 0 while it does not (health is then NOT_SERVING).");
    }

    public string Instance { get; }

    /// <summary>Open AppendOps streams of this engine (for the drain's log line).</summary>
    public long AppendStreams => Interlocked.Read(ref _appendStreams);

    /// <summary>Open Subscribe streams of this engine.</summary>
    public long SubscribeStreams => Interlocked.Read(ref _subscribeStreams);

    public void BatchCommitted(TimeSpan duration, int applied, int duplicates, int rejected)
    {
        _commitDuration.Record(duration.TotalSeconds, _instance);
        if (applied > 0) _ops.Add(applied, _instance, new("outcome", "applied"));
        if (duplicates > 0) _ops.Add(duplicates, _instance, new("outcome", "duplicate"));
        if (rejected > 0) _ops.Add(rejected, _instance, new("outcome", "rejected"));
    }

    /// <summary>Counts an open stream of <paramref name="kind"/> (append, subscribe) until the result is disposed.</summary>
    public IDisposable StreamOpened(string kind)
    {
        Interlocked.Increment(ref Counter(kind));
        _streams.Add(1, _instance, new("kind", kind));
        return new StreamSlot(this, kind);
    }

    public void StreamFenced(string kind) => _fenced.Add(1, _instance, new("kind", kind));

    public void Refused(string reason, string status) => _refusals.Add(1, _instance, new("reason", reason), new("status", status));

    public void CommitRetried() => _commitRetries.Add(1, _instance);

    public void CommitFailed() => _commitFailures.Add(1, _instance);

    public void LimitReached(string limit) => _limits.Add(1, _instance, new("limit", limit));

    public void Dispose() => _meter.Dispose();

    private ref long Counter(string kind) => ref kind == StreamKinds.Append ? ref _appendStreams : ref _subscribeStreams;

    private sealed class StreamSlot(ServerMetrics metrics, string kind) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            Interlocked.Decrement(ref metrics.Counter(kind));
            metrics._streams.Add(-1, metrics._instance, new("kind", kind));
        }
    }
}

/// <summary>The values of the <c>kind</c> tag.</summary>
internal static class StreamKinds
{
    public const string Append = "append";
    public const string Subscribe = "subscribe";
}
