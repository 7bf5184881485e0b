using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// What grpc.health.v1 reports for "" and "sharerpc.v1.ShareRpc": NOT_SERVING from the moment the
/// host starts stopping (a balancer stops sending new calls while open streams drain).
/// </summary>
internal sealed class ShareRpcHealthCheck(IHostApplicationLifetime lifetime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(lifetime.ApplicationStopping.IsCancellationRequested
            ? HealthCheckResult.Unhealthy("draining: the server is shutting down")
            : HealthCheckResult.Healthy());
}
