using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Client;

/// <summary>A call failed: the gRPC status plus the server's machine-readable <c>sharerpc-reason</c>.</summary>
public sealed class ShareRpcCallException : RpcException
{
    /// <summary>A failure with the status and trailers of the call.</summary>
    public ShareRpcCallException(Status status, Metadata trailers)
        : base(status, trailers, status.Detail)
    {
        Reason = trailers.Get(Reasons.TrailerName) is { IsBinary: false } e ? e.Value : null;
    }

    /// <summary>e.g. "revoked", "rights", "bad-secret", "epoch-stale", "expired"; null when the server gave none.</summary>
    public string? Reason { get; }

    /// <summary>
    /// UNAUTHENTICATED: redeem the sturdy ref again and retry. epoch-stale and expired are the
    /// usual reasons; any other (an unknown signing key after a server lost its data dir) also
    /// gets one redeem, which then tells the real story (NOT_FOUND, PERMISSION_DENIED).
    /// </summary>
    public bool IsRedeemable => StatusCode == StatusCode.Unauthenticated;

    /// <summary>Retrying cannot help (revoked, missing right, unknown share, bad input).</summary>
    public bool IsPermanent => StatusCode is StatusCode.PermissionDenied or StatusCode.NotFound or StatusCode.InvalidArgument
        or StatusCode.AlreadyExists or StatusCode.Unimplemented or StatusCode.ResourceExhausted or StatusCode.FailedPrecondition
        or StatusCode.DataLoss; // the server lost ops it acked (docs/client.md: the sender stops); found by the chaos canary

    /// <inheritdoc />
    public override string Message => $"{StatusCode}{(Reason is null ? "" : " (" + Reason + ")")}: {Status.Detail}";

    internal static ShareRpcCallException From(RpcException ex) =>
        ex as ShareRpcCallException ?? new ShareRpcCallException(ex.Status, ex.Trailers);

    /// <summary>A failure the client itself observed (no server status), e.g. a broken stream.</summary>
    internal static ShareRpcCallException Local(StatusCode code, string detail, Exception? cause = null) =>
        new(new Status(code, detail, cause), new Metadata());
}
