using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Trace;
using ShareRpc.Server.Diagnostics;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// An op's trace survives its producer's death: a producer process (<see cref="TraceHost"/>) enqueues
/// ops under <c>sharerpc.enqueue</c> spans while the server is down and is SIGKILLed with none
/// acked; a new client on the same outbox replays them to the restarted server, whose
/// <c>sharerpc.apply</c> spans (in-memory exporter) link to exactly the dead producer's spans.
/// </summary>
public sealed class TraceReplayTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Apply_spans_link_to_the_enqueue_spans_of_a_producer_killed_before_its_acks()
    {
        var spans = new List<Activity>();
        // The exporter adds as spans end, on their threads (other tests' servers too): read copies, without a torn slot.
        Activity[] Exported() => [.. spans.ToArray().Where(a => a is not null)];
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(ShareRpcServerDiagnostics.ActivitySourceName)
            .AddSource("Microsoft.AspNetCore") // the server's request span: the apply span's parent
            .AddInMemoryExporter(spans)
            .Build()!;
        await using var server = await InProcessServer.StartAsync();
        await using var creator = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("creator.db") });
        var sturdy = await creator.EnsureShareAsync(server.Address, "session-trace-replay");
        var outbox = _dir.File("producer.db");
        var printed = new HashSet<(string, string)>();
        // Down while the producer enqueues and dies: nothing it enqueued is acked.
        await server.RestartAsync(async () =>
        {
            await using var producer = TestProcess.Start(typeof(TraceHost).Assembly.Location, "enqueue", outbox, sturdy, "5");
            await producer.WaitForLineAsync(l => l == "enqueued", TimeSpan.FromSeconds(60));
            await producer.KillAsync();
            foreach (var line in producer.Lines.Where(l => l.StartsWith("enqueue ", StringComparison.Ordinal)))
            {
                var parts = line.Split(' ');
                printed.Add((parts[1], parts[2]));
            }
        });

        Assert.Equal(5, printed.Count);
        var logs = new LogSink();
        await using (var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = outbox, LoggerFactory = logs.Factory }))
        {
            var writers = await client.ResumeAllAsync();
            await Assert.Single(writers).FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }

        // The replay was logged with how many ops it carried.
        var replay = Assert.Single(logs.WithId(2010));
        Assert.Equal(5L, replay.State.Single(kv => kv.Key == "Pending").Value);
        tracing.ForceFlush();
        var shareId = SturdyRef.Parse(sturdy).ShareId;
        var applies = Exported().Where(a => a.OperationName == "sharerpc.apply" && (a.GetTagItem("sharerpc.share.id") as string) == shareId).ToList();
        Assert.NotEmpty(applies);
        var linked = applies.SelectMany(a => a.Links).Select(l => (l.Context.TraceId.ToString(), l.Context.SpanId.ToString())).ToHashSet();
        Assert.Equal(printed.OrderBy(p => p), linked.OrderBy(p => p));

        // Each apply span is a child of its AppendOps call's ASP.NET Core span (exported once the call
        // ends, which the server may finish after the client left): the gRPC trace stays connected.
        await Wait.UntilAsync(
            () => applies.All(a => Exported().Any(r => r.Source.Name == "Microsoft.AspNetCore" && r.SpanId == a.ParentSpanId && r.TraceId == a.TraceId)),
            TimeSpan.FromSeconds(30),
            () => "an apply span's parent is not its call's request span: "
                + string.Join(", ", applies.Select(a => $"{a.TraceId}/{a.ParentSpanId}")) + " vs " + string.Join(", ", Exported().Where(r => r.Source.Name == "Microsoft.AspNetCore").Select(r => $"{r.TraceId}/{r.SpanId}")));

        logs.Factory.Dispose();
    }
}
