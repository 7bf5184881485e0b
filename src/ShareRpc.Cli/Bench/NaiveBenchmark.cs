using System.Diagnostics;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// The baseline a user writes by hand: one unary call per op; the handler inserts one row into
/// its own SQLite file (WAL, synchronous=FULL) and commits before answering. No batching, no
/// group commit, no outbox on the caller's side. Measured with one sequential caller and with
/// 16 concurrent callers (each op still its own commit).
/// </summary>
internal static class NaiveBenchmark
{
    public sealed record Case(int Callers, long Ops, double Seconds, double OpsPerSecond, double P50Ms, double P99Ms);

    public sealed record Result(int ValueBytes, Case Sequential, Case Concurrent);

    public static async Task<Result> RunAsync(TimeSpan duration, int valueBytes, int callers, TextWriter log, CancellationToken ct)
    {
        var dir = BenchSupport.TempDir("naive");
        try
        {
            using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, "naive.db"), Pooling = false }.ToString());
            db.Open();
            using (var setup = db.CreateCommand())
            {
                setup.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE ops(id INTEGER PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, value BLOB NOT NULL);";
                setup.ExecuteNonQuery();
            }

            using var insert = db.CreateCommand();
            insert.CommandText = "INSERT INTO ops(op_id, value) VALUES ($id, $v)";
            var pId = insert.Parameters.Add("$id", SqliteType.Text);
            var pV = insert.Parameters.Add("$v", SqliteType.Blob);
            insert.Prepare();
            var gate = new object();

            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(new RawBytesService(request =>
            {
                // One op, one transaction, one fsync (autocommit), then the answer.
                lock (gate)
                {
                    pId.Value = Guid.CreateVersion7().ToString();
                    pV.Value = request;
                    insert.ExecuteNonQuery();
                }

                return Task.FromResult(Array.Empty<byte>());
            }));
            builder.WebHost.ConfigureKestrel(k => k.ListenShareRpc(IPAddress.Loopback, 0));
            await using var app = builder.Build();
            app.MapGrpcService<RawBytesService>();
            await app.StartAsync(ct);
            using var channel = BenchSupport.Channel(app.Urls.Single());
            var payload = new byte[valueBytes];
            Random.Shared.NextBytes(payload);

            log.WriteLine($"naive bench: unary call per op, server commits each op (SQLite WAL FULL), {valueBytes} B, {duration.TotalSeconds:0.#} s per case");
            await RunCaseAsync(channel, payload, 1, duration / 4, ct);
            var sequential = await RunCaseAsync(channel, payload, 1, duration, ct);
            log.WriteLine($"  1 sequential caller: {sequential.OpsPerSecond:N0} ops/s (p50 {sequential.P50Ms:0.00} ms, p99 {sequential.P99Ms:0.00} ms)");
            var concurrent = await RunCaseAsync(channel, payload, callers, duration, ct);
            log.WriteLine($"  {callers} callers: {concurrent.OpsPerSecond:N0} ops/s (p50 {concurrent.P50Ms:0.00} ms, p99 {concurrent.P99Ms:0.00} ms)");
            await app.StopAsync(ct);
            return new Result(valueBytes, sequential, concurrent);
        }
        finally
        {
            BenchSupport.DeleteDir(dir);
        }
    }

    private static async Task<Case> RunCaseAsync(GrpcChannel channel, byte[] payload, int callers, TimeSpan duration, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var invoker = channel.CreateCallInvoker();
        var latencies = new List<double>[callers];
        await Task.WhenAll(Enumerable.Range(0, callers).Select(i => Task.Run(
            async () =>
            {
                var mine = latencies[i] = new List<double>();
                while (sw.Elapsed < duration)
                {
                    var start = Stopwatch.GetTimestamp();
                    await invoker.AsyncUnaryCall(RawBytesService.PutMethod, null, new CallOptions(cancellationToken: ct), payload);
                    mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            },
            ct)));
        var seconds = sw.Elapsed.TotalSeconds;
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new Case(callers, all.Length, BenchSupport.R(seconds, 2), BenchSupport.R(all.Length / seconds), BenchSupport.R(BenchSupport.Percentile(all, 0.5), 3), BenchSupport.R(BenchSupport.Percentile(all, 0.99), 3));
    }
}
