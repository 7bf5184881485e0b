using System.Diagnostics;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using ShareRpc.TestSupport;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Health reflects reality: a real <c>sharerpc serve --store postgres</c> answers NOT_SERVING within
/// seconds of its PostgreSQL cluster stopping, logs StoreUnavailable (1042), and SERVING again
/// once the cluster is back (StoreAvailable, 1043). The cluster is this test's own (never the
/// shared one of SHARERPC_TEST_PG), so stopping it disturbs no other test.
/// </summary>
public sealed class StoreHealthTests : IDisposable
{
    /// <summary>The probe times out after 2 s and its result stands 1 s: well within this.</summary>
    private static readonly TimeSpan s_flipWithin = TimeSpan.FromSeconds(15);

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Health_is_NOT_SERVING_while_PostgreSQL_is_down_and_SERVING_once_it_is_back()
    {
        await using var pg = await PostgresTestServer.StartOwnAsync();
        var database = await pg.CreateDatabaseAsync("health");
        await using var serve = await ServeProcess.StartAsync(_dir.Path, 0, "--store", "postgres", "--pg", database, "--log-level", "Information");
        using var channel = GrpcChannel.ForAddress(serve.Address);
        var health = new Health.HealthClient(channel);
        await WaitForAsync(health, HealthCheckResponse.Types.ServingStatus.Serving, TimeSpan.FromSeconds(30));

        var down = Stopwatch.StartNew();
        await pg.HaltAsync();
        await WaitForAsync(health, HealthCheckResponse.Types.ServingStatus.NotServing, s_flipWithin);
        Assert.True(down.Elapsed < s_flipWithin, $"NOT_SERVING after {down.Elapsed}");
        await serve.Process.WaitForLineAsync(l => l.Contains("[1042]", StringComparison.Ordinal), s_flipWithin); // StoreUnavailable

        var up = Stopwatch.StartNew();
        await pg.ResumeAsync();
        await WaitForAsync(health, HealthCheckResponse.Types.ServingStatus.Serving, s_flipWithin);
        Assert.True(up.Elapsed < s_flipWithin, $"SERVING after {up.Elapsed}");
        await serve.Process.WaitForLineAsync(l => l.Contains("[1043]", StringComparison.Ordinal), s_flipWithin); // StoreAvailable
    }

    /// <summary>Polls Check (each with a deadline) until it answers <paramref name="want"/>; fails with the last answer otherwise.</summary>
    private static async Task WaitForAsync(Health.HealthClient health, HealthCheckResponse.Types.ServingStatus want, TimeSpan within)
    {
        var last = "nothing";
        await Wait.UntilAsync(
            async () =>
            {
                try
                {
                    var r = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
                    last = r.Status.ToString();
                    return r.Status == want;
                }
                catch (RpcException e)
                {
                    last = e.Status.ToString();
                    return false;
                }
            },
            within,
            () => $"health was not {want}: last answer {last}");
    }
}
