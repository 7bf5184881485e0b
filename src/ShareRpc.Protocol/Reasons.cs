namespace ShareRpc.Protocol;

/// <summary>Machine-readable reasons, sent in the <c>sharerpc-reason</c> trailer.</summary>
public static class Reasons
{
    public const string TrailerName = ShareRpcMethods.ReasonTrailer;
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
