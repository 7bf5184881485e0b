using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// What grpc.health.v1 reports for "" and "sharerpc.v1.ShareRpc" (docs/server.md, "Health"):
/// NOT_SERVING from the moment the host starts stopping (a balancer stops sending new calls while
/// open streams drain), and while the store does not answer its probe (PostgreSQL down: every write
/// would fail UNAVAILABLE storage). The probe is bounded and its result shared for a second
/// (<see cref="Diagnostics.StoreHealth"/>), so a check never waits long and a busy balancer costs
/// the store one cheap read a second.
/// </summary>
internal sealed class ShareRpcHealthCheck(IHostApplicationLifetime lifetime, ShareEngine engine) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (lifetime.ApplicationStopping.IsCancellationRequested) return HealthCheckResult.Unhealthy("draining: the server is shutting down");
        var storeError = await engine.StoreHealth.CheckAsync().ConfigureAwait(false);
        return storeError is null ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("the store does not answer: " + storeError);
    }
}
