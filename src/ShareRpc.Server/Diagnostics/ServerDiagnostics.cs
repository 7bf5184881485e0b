using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;

namespace ShareRpc.Server.Diagnostics;

/// <summary>
/// One engine's logs and metrics together (docs/design.md, "Diagnostics"): the places that act
/// (the engine, the interceptor, the stream handlers, the committer, the health check) call one
/// method here, which writes the <see cref="ServerLog"/> event and moves the
/// <see cref="ServerMetrics"/> instrument that belong to it, so the two never disagree.
/// </summary>
internal sealed class ServerDiagnostics : IDisposable
{
    /// <summary>Lines per refusal reason, and per limit, per this long at most (docs/operate.md).</summary>
    public static readonly TimeSpan DefaultLogInterval = TimeSpan.FromMinutes(1);

    private static int s_engines;
    private readonly LogRateLimiter _refusals;
    private readonly LogRateLimiter _limits;

    public ServerDiagnostics(ILoggerFactory? loggerFactory, TimeProvider clock, Func<long> queuedWrites, Func<int?> storeUp)
    {
        Logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("ShareRpc.Server");
        Metrics = new ServerMetrics(InstanceName(), queuedWrites, storeUp);
        _refusals = new LogRateLimiter(clock, DefaultLogInterval);
        _limits = new LogRateLimiter(clock, DefaultLogInterval);
    }

    public ILogger Logger { get; }

    public ServerMetrics Metrics { get; }

    /// <summary>For tests: how often a refusal reason or a limit may be logged.</summary>
    public TimeSpan LogInterval
    {
        get => _refusals.Interval;
        set => _refusals.Interval = _limits.Interval = value;
    }

    /// <summary>host/pid, and #n for the n-th engine of a process (tests run several): the <c>sharerpc.instance</c> tag.</summary>
    private static string InstanceName()
    {
        var n = Interlocked.Increment(ref s_engines);
        var name = $"{Environment.MachineName}/{Environment.ProcessId}";
        return n == 1 ? name : $"{name}#{n}";
    }

    /// <summary>A call or stream ended with a ShareRpc reason: counted always, logged once per reason per interval.</summary>
    public void Refused(string method, ShareRpcException e)
    {
        Metrics.Refused(e.Reason, StatusName(e.Status));
        if (Logger.IsEnabled(LogLevel.Information) && _refusals.TryAcquire(e.Reason, out var suppressed))
            ServerLog.CallRefused(Logger, ShortMethod(method), StatusName(e.Status), e.Reason, e.Message, suppressed);
    }

    /// <summary>A stream of <paramref name="kind"/> ended by the fence (revoked / epoch-stale after a revoke moved the epoch).</summary>
    public void Fenced(string kind, LiveRefClaims claims, ShareRpcException e)
    {
        Metrics.StreamFenced(kind);
        ServerLog.StreamFenced(Logger, kind, claims.CapabilityId, claims.ShareId, claims.Epoch, StatusName(e.Status), e.Reason);
    }

    /// <summary>A hostile-load limit stopped a peer, where the limit is enforced: counted always, logged once per limit per interval.</summary>
    public void LimitReached(string limit, long value, string unit, LiveRefClaims claims, string consequence)
    {
        Metrics.LimitReached(limit);
        if (Logger.IsEnabled(LogLevel.Warning) && _limits.TryAcquire(limit, out var suppressed))
            ServerLog.LimitReached(Logger, limit, value, unit, claims.CapabilityId, claims.ShareId, consequence, suppressed);
    }

    public void ShareCreated(CreateShareResponse response)
    {
        var capability = SturdyRef.TryParse(response.SturdyRef, out var parsed, out _) ? parsed!.CapabilityId : "?";
        if (response.Created) ServerLog.ShareCreated(Logger, response.ShareId, capability);
        else ServerLog.ShareFoundAgain(Logger, response.ShareId);
    }

    public void Redeemed(LiveRefClaims claims) =>
        ServerLog.CapabilityRedeemed(Logger, claims.CapabilityId, claims.ShareId, claims.Rights.ToString(), claims.Epoch, claims.ExpiresAt);

    public void Delegated(LiveRefClaims parent, DelegateCapabilityResponse response, Rights rights) =>
        ServerLog.CapabilityDelegated(Logger, parent.CapabilityId, parent.ShareId, response.CapabilityId, rights.ToString());

    public void Revoked(LiveRefClaims caller, RevokeCapabilityResponse response) =>
        ServerLog.CapabilityRevoked(Logger, caller.CapabilityId, caller.ShareId, response.RevokedCapabilityIds.Count, string.Join(", ", response.RevokedCapabilityIds), response.Epoch);

    public void CommitRetried(int writes, int attempt, int maxAttempts, Exception error)
    {
        Metrics.CommitRetried();
        ServerLog.CommitRetried(Logger, writes, attempt, maxAttempts, error.Message);
    }

    public void CommitFailed(int writes, int attempts, Exception error)
    {
        Metrics.CommitFailed();
        ServerLog.CommitFailed(Logger, writes, attempts, error);
    }

    public void Dispose() => Metrics.Dispose();

    /// <summary>UNAVAILABLE, PERMISSION_DENIED …: gRPC's own spelling, as clients print it.</summary>
    public static string StatusName(ShareRpcStatus status) => status switch
    {
        ShareRpcStatus.InvalidArgument => "INVALID_ARGUMENT",
        ShareRpcStatus.NotFound => "NOT_FOUND",
        ShareRpcStatus.AlreadyExists => "ALREADY_EXISTS",
        ShareRpcStatus.PermissionDenied => "PERMISSION_DENIED",
        ShareRpcStatus.ResourceExhausted => "RESOURCE_EXHAUSTED",
        ShareRpcStatus.FailedPrecondition => "FAILED_PRECONDITION",
        ShareRpcStatus.Unavailable => "UNAVAILABLE",
        ShareRpcStatus.Unauthenticated => "UNAUTHENTICATED",
        ShareRpcStatus.DataLoss => "DATA_LOSS",
        _ => status.ToString().ToUpperInvariant(),
    };

    /// <summary>"/sharerpc.v1.ShareRpc/AppendOps" → "AppendOps".</summary>
    private static string ShortMethod(string method) => method[(method.LastIndexOf('/') + 1)..];
}
