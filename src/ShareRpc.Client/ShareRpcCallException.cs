using ShareRpc.Protocol;
using ShareRpc.Wire;

namespace ShareRpc.Client;

/// <summary>A call failed: the gRPC status plus the server's machine-readable <c>sharerpc-reason</c>.</summary>
public sealed class ShareRpcCallException : RpcException
{
    public ShareRpcCallException(Status status, Metadata trailers, Exception? inner = null)
        : base(status, trailers, inner)
    {
        Reason = trailers.Get(ShareRpcMethods.ReasonTrailer) is { IsBinary: false } e ? e.Value : null;
    }

    /// <summary>e.g. "revoked", "rights", "bad-secret", "epoch-stale", "expired"; null when the server gave none.</summary>
    public string? Reason { get; }

    /// <summary>UNAUTHENTICATED epoch-stale / expired: redeem the sturdy ref again and retry.</summary>
    public bool IsRedeemable => StatusCode == StatusCode.Unauthenticated && Reason is "epoch-stale" or "expired";

    /// <summary>Retrying cannot help (revoked, missing right, unknown share, bad input).</summary>
    public bool IsPermanent => StatusCode is StatusCode.PermissionDenied or StatusCode.NotFound or StatusCode.InvalidArgument
        or StatusCode.AlreadyExists or StatusCode.Unimplemented or StatusCode.ResourceExhausted or StatusCode.FailedPrecondition
        || (StatusCode == StatusCode.Unauthenticated && !IsRedeemable);

    public override string Message => $"{StatusCode}{(Reason is null ? "" : " (" + Reason + ")")}: {Status.Detail}";

    internal static ShareRpcCallException From(RpcException ex) =>
        ex as ShareRpcCallException ?? new ShareRpcCallException(ex.Status, ex.Trailers, ex);
}
