namespace ShareRpc.Server;

/// <summary>gRPC status codes (same numbers as grpc's), so the core does not depend on the wire layer.</summary>
public enum ShareRpcStatus
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

/// <summary>Machine-readable reasons, sent in the <c>sharerpc-reason</c> trailer.</summary>
public static class Reasons
{
    public const string TrailerName = "sharerpc-reason";
    public const string FieldTrailerName = "sharerpc-field";

    // PERMISSION_DENIED
    public const string BadSecret = "bad-secret";
    public const string Revoked = "revoked";
    public const string Rights = "rights";
    /// <summary>PERMISSION_DENIED: the capability itself has expired (redeeming again cannot help).</summary>
    public const string CapabilityExpired = "capability-expired";

    // UNAUTHENTICATED
    public const string EpochStale = "epoch-stale";
    public const string Expired = "expired";
    public const string MissingToken = "missing-token";
    public const string InvalidToken = "invalid-token";
    public const string CreatorToken = "creator-token";

    // NOT_FOUND
    public const string ShareNotFound = "share-not-found";
    public const string CapabilityNotFound = "capability-not-found";

    // ALREADY_EXISTS
    public const string ShareKeyTaken = "share-key-taken";
    public const string SecretTaken = "secret-taken";

    // INVALID_ARGUMENT / RESOURCE_EXHAUSTED
    public const string InvalidArgument = "invalid-argument";
    public const string Limit = "limit";

    // UNAVAILABLE
    public const string Storage = "storage";
    public const string ShuttingDown = "shutting-down";
}

/// <summary>
/// A call-level failure: a gRPC status, a <c>sharerpc-reason</c>, and for argument errors the
/// field path (e.g. <c>ops[3].put.key</c>). Maps one to one onto the wire's RpcException.
/// </summary>
public sealed class ShareRpcException : Exception
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
