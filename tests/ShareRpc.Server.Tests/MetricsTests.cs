using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ShareRpc.Server.Diagnostics;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class MetricsTests
{
    [Fact]
    public async Task Ops_and_batch_latency_are_measured()
    {
        await using var f = new EngineFixture();
        var (owner, _) = await f.NewShareAsync();
        var totals = new ConcurrentDictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ShareRpcServerDiagnostics.MeterName) l.EnableMeasurementEvents(instrument);
        };
        // The meter is process-wide and other tests run in parallel: assert lower bounds this test alone guarantees.
        listener.SetMeasurementEventCallback<long>((i, v, _, _) => totals.AddOrUpdate(i.Name, v, (_, old) => old + v));
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => totals.AddOrUpdate(i.Name, 1, (_, old) => old + 1));
        listener.Start();

        var first = Batch("p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1", dependsOn: "missing"));
        await f.Engine.AppendAsync(owner, first);
        await f.Engine.AppendAsync(owner, first);

        Assert.True(totals.GetValueOrDefault("sharerpc.ops.applied") >= 1);
        Assert.True(totals.GetValueOrDefault("sharerpc.ops.duplicate") >= 1);
        Assert.True(totals.GetValueOrDefault("sharerpc.ops.rejected") >= 2);
        Assert.True(totals.GetValueOrDefault("sharerpc.batch.commit_latency") >= 2);
    }
}
