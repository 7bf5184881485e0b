using ShareRpc.Server.Apply;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Diagnostics;

namespace ShareRpc.Server;

/// <summary>
/// Open AppendOps and Subscribe streams: counted per capability so that one holder cannot take
/// every stream slot of a share (docs/design.md, "Limits": streams per capability), and by kind in
/// the <c>sharerpc.server.streams</c> metric (docs/operate.md).
/// </summary>
internal sealed partial class ShareEngine
{
    private readonly Dictionary<string, int> _streamsPerCapability = new(StringComparer.Ordinal);

    /// <summary>What all AppendOps streams' windows hold and wait for together (counts only; each stream is gated by its own window).</summary>
    public ByteBudget StreamWindows { get; } = new(long.MaxValue, "AppendOps stream windows");

    /// <summary>A new AppendOps stream's in-flight window (MaxInFlightBytesPerStream), counted in <see cref="StreamWindows"/>.</summary>
    public ByteBudget NewStreamWindow() => new(Limits.MaxInFlightBytesPerStream, nameof(ShareRpcLimits.MaxInFlightBytesPerStream), StreamWindows);

    /// <summary>Streams open now under <paramref name="capabilityId"/> in this process (tests, metrics).</summary>
    public int OpenStreams(string capabilityId)
    {
        lock (_streamsPerCapability) return _streamsPerCapability.GetValueOrDefault(capabilityId);
    }

    /// <summary>
    /// Counts an open stream of <paramref name="claims"/>' capability until the returned object is
    /// disposed; refuses one past <see cref="ShareRpcLimits.MaxStreamsPerCapability"/> with
    /// RESOURCE_EXHAUSTED. Counted in this server process: servers sharing a database each allow as many.
    /// </summary>
    public IDisposable OpenStream(LiveRefClaims claims, string method)
    {
        var cap = claims.CapabilityId;
        lock (_streamsPerCapability)
        {
            var open = _streamsPerCapability.GetValueOrDefault(cap);
            if (open >= Limits.MaxStreamsPerCapability)
            {
                Diagnostics.LimitReached(nameof(Limits.MaxStreamsPerCapability), Limits.MaxStreamsPerCapability, "streams", claims, $"a {method} stream was refused RESOURCE_EXHAUSTED");
                throw ShareRpcException.LimitExceeded("stream", nameof(Limits.MaxStreamsPerCapability), Limits.MaxStreamsPerCapability, "streams", open + 1);
            }
            _streamsPerCapability[cap] = open + 1;
        }
        return new StreamSlot(this, cap, Diagnostics.Metrics.StreamOpened(method == "AppendOps" ? StreamKinds.Append : StreamKinds.Subscribe));
    }

    private long _stalledSubscribers;

    /// <summary>Subscribe streams cut off for taking no event within SubscriberStallTimeout (tests, metrics).</summary>
    public long StalledSubscribers => Interlocked.Read(ref _stalledSubscribers);

    /// <summary>A Subscribe stream of <paramref name="claims"/> cut off for taking no event within SubscriberStallTimeout: counted, and logged as a limit.</summary>
    internal void CountStalledSubscriber(LiveRefClaims claims)
    {
        Interlocked.Increment(ref _stalledSubscribers);
        Diagnostics.LimitReached(nameof(ShareRpcServerOptions.SubscriberStallTimeout), (long)Options.SubscriberStallTimeout.TotalMilliseconds, "ms", claims, "a Subscribe stream that took no event was ended");
    }

    private void CloseStream(string capabilityId)
    {
        lock (_streamsPerCapability)
        {
            var open = _streamsPerCapability.GetValueOrDefault(capabilityId) - 1;
            if (open <= 0) _streamsPerCapability.Remove(capabilityId); // memory follows open streams, not capabilities ever seen
            else _streamsPerCapability[capabilityId] = open;
        }
    }

    private sealed class StreamSlot(ShareEngine engine, string capabilityId, IDisposable metric) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            metric.Dispose();
            engine.CloseStream(capabilityId);
        }
    }
}
