using Sharerpc.V1;

namespace ShareRpc.Server;

/// <summary>gRPC status codes (same numbers as grpc's), so the core does not depend on the wire layer.</summary>
internal enum ShareRpcStatus
{
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}


/// <summary>
/// A call-level failure: a gRPC status, a <c>sharerpc-reason</c>, and for argument errors the
/// field path (e.g. <c>ops[3].put.key</c>). Maps one to one onto the wire's RpcException.
/// </summary>
internal sealed class ShareRpcException : Exception
{
    public ShareRpcException(ShareRpcStatus status, string reason, string message, string? field = null, Exception? inner = null)
        : base(message, inner)
    {
        Status = status;
        Reason = reason;
        Field = field;
    }

    public ShareRpcStatus Status { get; }
    public string Reason { get; }
    public string? Field { get; }

    public static ShareRpcException InvalidArgument(string field, string problem) =>
        new(ShareRpcStatus.InvalidArgument, Reasons.InvalidArgument, $"{field}: {problem}", field);

    public static ShareRpcException LimitExceeded(string field, string limitName, long limit, string unit, long actual) =>
        new(ShareRpcStatus.ResourceExhausted, Reasons.Limit,
            $"{field}: {actual} {unit} exceeds {limitName} = {limit} {unit}", field);

    public static ShareRpcException PermissionDenied(string reason, string message) =>
        new(ShareRpcStatus.PermissionDenied, reason, message);

    public static ShareRpcException Unauthenticated(string reason, string message) =>
        new(ShareRpcStatus.Unauthenticated, reason, message);

    public static ShareRpcException NotFound(string reason, string message) =>
        new(ShareRpcStatus.NotFound, reason, message);

    public override string ToString() => $"{Status} ({Reason}): {Message}";
}
