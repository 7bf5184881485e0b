using System.Diagnostics.Metrics;

namespace ShareRpc.Client.Diagnostics;

/// <summary>
/// The client's instruments on the meter <c>ShareRpc.Client</c>, one reporter per
/// <see cref="ShareRpcClient"/> (as Npgsql's MetricsReporter is per data source): OpenTelemetry
/// names, UCUM units, a description each, and every measurement tagged <see cref="InstanceTag"/>
/// (<see cref="ShareRpcClientOptions.InstanceName"/>). The catalogue with what to do when each moves:
/// docs/operate.md.
/// </summary>
internal sealed class ClientMetrics : IDisposable
{
    public const string InstanceTag = "sharerpc.instance";
    public const string Pending = "sharerpc.client.outbox.pending";
    public const string OldestPendingAge = "sharerpc.client.outbox.oldest_pending.age";
    public const string AckDuration = "sharerpc.client.ack.duration";
    public const string Reconnects = "sharerpc.client.reconnects";
    public const string Enqueued = "sharerpc.client.ops.enqueued";
    public const string Acked = "sharerpc.client.ops.acked";
    public const string SetAside = "sharerpc.client.ops.set_aside";
    public const string SenderStops = "sharerpc.client.sender.stops";

    private readonly Meter _meter;
    private readonly KeyValuePair<string, object?> _instance;
    private readonly Histogram<double> _ackDuration;
    private readonly Counter<long> _reconnects;
    private readonly Counter<long> _enqueued;
    private readonly Counter<long> _acked;
    private readonly Counter<long> _setAside;
    private readonly Counter<long> _stops;
    private readonly List<OutboxGauge> _gauges = [];

    public ClientMetrics(string instance)
    {
        _instance = new(InstanceTag, instance);
        _meter = new Meter(ShareRpcClientDiagnostics.MeterName, typeof(ClientMetrics).Assembly.GetName().Version?.ToString());
        _meter.CreateObservableGauge(Pending, ObservePending, "{op}",
            "Ops durable in the outbox and not yet acked or set aside, over this client's open writers (read from the outbox at most once a second).");
        _meter.CreateObservableGauge(OldestPendingAge, ObserveOldestAge, "s",
            "How long the oldest unacked op of this client's open writers has waited since it was enqueued.");
        _ackDuration = _meter.CreateHistogram<double>(AckDuration, "s", "From an op enqueued (durable in the outbox) to its ack recorded: the whole trip, replays included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _reconnects = _meter.CreateCounter<long>(Reconnects, "{reconnect}", "Streams that broke and are tried again after a backoff, by kind: append (the sender) or subscribe.");
        _enqueued = _meter.CreateCounter<long>(Enqueued, "{op}", "Ops made durable in the outbox.");
        _acked = _meter.CreateCounter<long>(Acked, "{op}", "Ops acked by the server, by outcome: applied, duplicate or rejected.");
        _setAside = _meter.CreateCounter<long>(SetAside, "{op}", "Poison ops set aside: the server refused them at call level; they wait for drop or retry.");
        _stops = _meter.CreateCounter<long>(SenderStops, "{sender}", "Senders stopped for good (PERMISSION_DENIED, NOT_FOUND, DATA_LOSS …), by gRPC status; their ops stay in the outbox.");
    }

    /// <summary>Adds a writer's outbox to the gauges until the result is disposed.</summary>
    public IDisposable Track(OutboxGauge gauge)
    {
        lock (_gauges) _gauges.Add(gauge);
        return new Untrack(this, gauge);
    }

    public void OpsEnqueued(int count) => _enqueued.Add(count, _instance);

    /// <summary>One batch acked: each op's enqueue-to-ack time (<paramref name="enqueuedAtMs"/> are Unix ms) and its outcome.</summary>
    public void BatchAcked(long[] enqueuedAtMs, DateTimeOffset now, int applied, int duplicates, int rejected)
    {
        if (_ackDuration.Enabled)
        {
            var nowMs = now.ToUnixTimeMilliseconds();
            foreach (var t in enqueuedAtMs) _ackDuration.Record(Math.Max(0, nowMs - t) / 1000.0, _instance);
        }

        if (applied > 0) _acked.Add(applied, _instance, new("outcome", "applied"));
        if (duplicates > 0) _acked.Add(duplicates, _instance, new("outcome", "duplicate"));
        if (rejected > 0) _acked.Add(rejected, _instance, new("outcome", "rejected"));
    }

    public void Reconnect(string kind) => _reconnects.Add(1, _instance, new("kind", kind));

    public void OpSetAside() => _setAside.Add(1, _instance);

    public void SenderStopped(string status) => _stops.Add(1, _instance, new("status", status));

    public void Dispose() => _meter.Dispose();

    private Measurement<long> ObservePending()
    {
        long total = 0;
        foreach (var g in Snapshot()) total += g.Read().Pending;
        return new Measurement<long>(total, _instance);
    }

    private Measurement<double> ObserveOldestAge()
    {
        double oldest = 0;
        foreach (var g in Snapshot()) oldest = Math.Max(oldest, g.Read().OldestAge.TotalSeconds);
        return new Measurement<double>(oldest, _instance);
    }

    private OutboxGauge[] Snapshot()
    {
        lock (_gauges) return [.. _gauges];
    }

    private sealed class Untrack(ClientMetrics metrics, OutboxGauge gauge) : IDisposable
    {
        public void Dispose()
        {
            lock (metrics._gauges) metrics._gauges.Remove(gauge);
        }
    }
}
