using System.Diagnostics;
using System.Text;
using ShareRpc.Client.Diagnostics;

namespace ShareRpc.Client.Tests;

/// <summary>
/// This assembly run as a producer process (<c>dotnet ShareRpc.Client.Tests.dll enqueue OUTBOX REF N</c>):
/// with an ActivityListener on <c>ShareRpc.Client</c>, it enqueues N puts, prints each
/// <c>sharerpc.enqueue</c> span as "enqueue TRACE_ID SPAN_ID", then "enqueued", and waits to be
/// SIGKILLed — its ops unacked (the trace test keeps the server down meanwhile).
/// </summary>
public static class TraceHost
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length != 4 || args[0] != "enqueue")
        {
            await Console.Error.WriteLineAsync("usage: enqueue OUTBOX STURDY_REF N");
            return 2;
        }

        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == ShareRpcClientDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.OperationName == "sharerpc.enqueue") Console.WriteLine($"enqueue {a.TraceId} {a.SpanId}");
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = args[1], MaxBackoff = TimeSpan.FromMilliseconds(200) });
        var writer = client.OpenWriter(args[2]);
        for (var i = 0; i < int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture); i++)
        {
            await writer.PutAsync("c", "k" + i, Encoding.UTF8.GetBytes("v" + i));
        }

        Console.WriteLine("enqueued");
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
