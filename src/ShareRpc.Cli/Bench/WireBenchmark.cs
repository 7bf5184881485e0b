using System.Diagnostics;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// Raw gRPC over loopback, no storage: Grpc.AspNetCore serving, Grpc.Net.Client calling (with the
/// SDK's tuned handler), byte[] messages. The ceiling every durable figure is compared with.
/// </summary>
internal static class WireBenchmark
{
    public sealed record Result(
        string Machine,
        string Transport,
        int MessageBytes,
        double Seconds,
        double DuplexMessagesPerSecond,
        int UnaryCallers,
        double UnaryCallsPerSecond,
        double UnaryP50Ms,
        double UnaryP99Ms);

    public static async Task<Result> RunAsync(TimeSpan duration, int messageBytes, int callers, bool tls, TextWriter log, CancellationToken ct)
    {
        var cert = tls ? SelfSignedCertificate.Create() : null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpc(o => o.MaxSendMessageSize = 4 * 1024 * 1024);
        builder.Services.AddSingleton(new RawBytesService(Task.FromResult));
        builder.WebHost.ConfigureKestrel(k => k.ListenShareRpc(IPAddress.Loopback, 0, cert));
        await using var app = builder.Build();
        app.MapGrpcService<RawBytesService>();
        await app.StartAsync(ct);
        var address = new Uri(app.Urls.Single());
        if (tls)
        {
            address = new UriBuilder(address) { Host = "localhost" }.Uri;
        }

        using var channel = BenchSupport.Channel(address.ToString(), cert);
        var payload = new byte[messageBytes];
        Random.Shared.NextBytes(payload);

        log.WriteLine($"wire bench: {(tls ? "TLS" : "h2c")} 127.0.0.1, {messageBytes} B messages, {duration.TotalSeconds:0.#} s per case, {Environment.ProcessorCount} cores");
        await DuplexAsync(channel, payload, duration / 4, ct);
        var duplex = await DuplexAsync(channel, payload, duration, ct);
        log.WriteLine($"  duplex stream: {duplex:N0} messages/s");

        await UnaryAsync(channel, payload, callers, duration / 4, ct);
        var (unary, p50, p99) = await UnaryAsync(channel, payload, callers, duration, ct);
        log.WriteLine($"  unary, {callers} callers: {unary:N0} calls/s (p50 {p50:0.00} ms, p99 {p99:0.00} ms)");

        await app.StopAsync(ct);
        return new Result(
            $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            tls ? "tls" : "h2c",
            messageBytes,
            duration.TotalSeconds,
            Math.Round(duplex),
            callers,
            Math.Round(unary),
            Math.Round(p50, 3),
            Math.Round(p99, 3));
    }

    private static async Task<double> DuplexAsync(GrpcChannel channel, byte[] payload, TimeSpan duration, CancellationToken ct)
    {
        using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(RawBytesService.EchoMethod, null, new CallOptions(cancellationToken: ct));
        long received = 0;
        var sw = Stopwatch.StartNew();
        var stop = false;
        var writer = Task.Run(
            async () =>
            {
                while (!Volatile.Read(ref stop))
                {
                    await call.RequestStream.WriteAsync(payload, ct);
                }

                await call.RequestStream.CompleteAsync();
            },
            ct);
        double rate = 0;
        while (await call.ResponseStream.MoveNext(ct))
        {
            received++;
            if (!stop && sw.Elapsed >= duration)
            {
                rate = received / sw.Elapsed.TotalSeconds;
                Volatile.Write(ref stop, true);
            }
        }

        await writer;
        return rate;
    }

    private static async Task<(double Rate, double P50, double P99)> UnaryAsync(GrpcChannel channel, byte[] payload, int callers, TimeSpan duration, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var invoker = channel.CreateCallInvoker();
        var latencies = new List<double>[callers];
        var tasks = Enumerable.Range(0, callers).Select(i => Task.Run(
            async () =>
            {
                var mine = latencies[i] = new List<double>();
                while (sw.Elapsed < duration)
                {
                    var start = Stopwatch.GetTimestamp();
                    await invoker.AsyncUnaryCall(RawBytesService.UnaryMethod, null, new CallOptions(cancellationToken: ct), payload);
                    mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            },
            ct)).ToArray();
        await Task.WhenAll(tasks);
        var all = latencies.SelectMany(l => l).OrderBy(x => x).ToArray();
        return (all.Length / sw.Elapsed.TotalSeconds, Percentile(all, 0.50), Percentile(all, 0.99));
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
