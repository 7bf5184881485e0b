namespace Sharerpc.V1;

/// <summary>
/// Machine-readable reasons for call-level failures, sent in the <c>sharerpc-reason</c> trailer
/// next to the gRPC status (docs/design.md, "AppendOps semantics"). Any gRPC client can read them.
/// </summary>
public static class Reasons
{
    /// <summary>The trailer that carries the reason.</summary>
    public const string TrailerName = "sharerpc-reason";

    /// <summary>The trailer that names the offending field of an INVALID_ARGUMENT or RESOURCE_EXHAUSTED (e.g. <c>ops[3].put.key</c>).</summary>
    public const string FieldTrailerName = "sharerpc-field";

    /// <summary>The full gRPC name of the service, <c>sharerpc.v1.ShareRpc</c>.</summary>
    public const string ServiceName = "sharerpc.v1.ShareRpc";

    // PERMISSION_DENIED

    /// <summary>PERMISSION_DENIED: the sturdy ref's secret does not match.</summary>
    public const string BadSecret = "bad-secret";

    /// <summary>PERMISSION_DENIED: the capability was revoked.</summary>
    public const string Revoked = "revoked";

    /// <summary>PERMISSION_DENIED: the capability lacks the right the call needs.</summary>
    public const string Rights = "rights";

    /// <summary>PERMISSION_DENIED: the capability itself has expired (redeeming again cannot help).</summary>
    public const string CapabilityExpired = "capability-expired";

    /// <summary>
    /// PERMISSION_DENIED: the batch's producer_id belongs to another capability (a producer's
    /// sequence belongs to the capability that first wrote it). Nothing of the producer's sequence is
    /// revealed; use a producer id of your own.
    /// </summary>
    public const string ProducerTaken = "producer-taken";

    // UNAUTHENTICATED

    /// <summary>UNAUTHENTICATED: the live ref's epoch is older than the share's (a revoke): redeem again and retry.</summary>
    public const string EpochStale = "epoch-stale";

    /// <summary>UNAUTHENTICATED: the live ref has expired: redeem again and retry.</summary>
    public const string Expired = "expired";

    /// <summary>UNAUTHENTICATED: no <c>authorization: Bearer</c> live ref.</summary>
    public const string MissingToken = "missing-token";

    /// <summary>UNAUTHENTICATED: the live ref is malformed or not signed by this server.</summary>
    public const string InvalidToken = "invalid-token";

    /// <summary>UNAUTHENTICATED: CreateShare without the server's creator token.</summary>
    public const string CreatorToken = "creator-token";

    // NOT_FOUND

    /// <summary>NOT_FOUND: the share does not exist (on this server).</summary>
    public const string ShareNotFound = "share-not-found";

    /// <summary>NOT_FOUND: the capability does not exist in this share.</summary>
    public const string CapabilityNotFound = "capability-not-found";

    // ALREADY_EXISTS

    /// <summary>ALREADY_EXISTS: the share key belongs to a share made with another owner secret.</summary>
    public const string ShareKeyTaken = "share-key-taken";

    /// <summary>ALREADY_EXISTS: the delegation secret was already used for another capability.</summary>
    public const string SecretTaken = "secret-taken";

    // INVALID_ARGUMENT / RESOURCE_EXHAUSTED

    /// <summary>INVALID_ARGUMENT: a field is malformed (<see cref="FieldTrailerName"/> names it).</summary>
    public const string InvalidArgument = "invalid-argument";

    /// <summary>RESOURCE_EXHAUSTED: a named limit was exceeded (the message names it, with its unit).</summary>
    public const string Limit = "limit";

    // UNAVAILABLE

    /// <summary>UNAVAILABLE: the store failed (a retry is safe).</summary>
    public const string Storage = "storage";

    /// <summary>UNAVAILABLE: the server is draining; reconnect and resend unacked batches.</summary>
    public const string ShuttingDown = "shutting-down";

    /// <summary>
    /// UNAVAILABLE: the request sent nothing for the server's idle timeout (an AppendOps stream with
    /// nothing in flight, or a request message that did not arrive whole in time); open a new call
    /// when there is something to send.
    /// </summary>
    public const string IdleTimeout = "idle-timeout";
}
