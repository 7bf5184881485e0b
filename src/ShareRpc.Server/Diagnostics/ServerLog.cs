using Microsoft.Extensions.Logging;

namespace ShareRpc.Server.Diagnostics;

/// <summary>
/// Every log event of the server, source-generated (docs/design.md, "Diagnostics"; the catalogue
/// with what to do about each: docs/operate.md). Event ids 1000–1099 are the
/// server's (the client's are 2000–2099), grouped by tens: hosting, capabilities, the fence,
/// refusals, storage, limits. Ids never change meaning; a retired id is not reused. Nothing here
/// takes a secret, a live ref or a whole sturdy ref: shares and capabilities are named by id.
/// Levels are chosen for an operator: Information is what happened to the service (a share, a
/// revoke, a drain), Warning a limit a peer ran into, Error what needs a person (storage).
/// </summary>
internal static partial class ServerLog
{
    // 1000–1009: the server's life.
    [LoggerMessage(EventId = 1000, EventName = "ServerStarted", Level = LogLevel.Information,
        Message = "ShareRpc server {Instance} started on the {Store} store")]
    public static partial void ServerStarted(ILogger logger, string instance, string store);

    [LoggerMessage(EventId = 1001, EventName = "Draining", Level = LogLevel.Information,
        Message = "Draining: health is NOT_SERVING; {AppendStreams} AppendOps and {SubscribeStreams} Subscribe streams end UNAVAILABLE shutting-down once the batches they sent are acked")]
    public static partial void Draining(ILogger logger, long appendStreams, long subscribeStreams);

    [LoggerMessage(EventId = 1002, EventName = "ServerStopped", Level = LogLevel.Information,
        Message = "ShareRpc server {Instance} stopped: {Commits} group commits since it started")]
    public static partial void ServerStopped(ILogger logger, string instance, long commits);

    // 1010–1019: shares and capabilities.
    [LoggerMessage(EventId = 1010, EventName = "ShareCreated", Level = LogLevel.Information,
        Message = "Share {ShareId} created; its owner capability is {CapabilityId}")]
    public static partial void ShareCreated(ILogger logger, string shareId, string capabilityId);

    [LoggerMessage(EventId = 1011, EventName = "ShareFoundAgain", Level = LogLevel.Debug,
        Message = "CreateShare for share {ShareId} again (same key and secret): the existing share is returned")]
    public static partial void ShareFoundAgain(ILogger logger, string shareId);

    [LoggerMessage(EventId = 1012, EventName = "CapabilityRedeemed", Level = LogLevel.Debug,
        Message = "Capability {CapabilityId} of share {ShareId} redeemed: rights {Rights}, epoch {Epoch}, live ref until {ExpiresAt:O}")]
    public static partial void CapabilityRedeemed(ILogger logger, string capabilityId, string shareId, string rights, ulong epoch, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 1013, EventName = "CapabilityDelegated", Level = LogLevel.Information,
        Message = "Capability {ParentId} of share {ShareId} delegated {CapabilityId} with rights {Rights}")]
    public static partial void CapabilityDelegated(ILogger logger, string parentId, string shareId, string capabilityId, string rights);

    [LoggerMessage(EventId = 1014, EventName = "CapabilityRevoked", Level = LogLevel.Information,
        Message = "Capability {CallerId} of share {ShareId} revoked {Count} capabilities ({RevokedIds}); the share's epoch is now {Epoch}")]
    public static partial void CapabilityRevoked(ILogger logger, string callerId, string shareId, int count, string revokedIds, ulong epoch);

    // 1020–1029: the fence.
    [LoggerMessage(EventId = 1020, EventName = "StreamFenced", Level = LogLevel.Information,
        Message = "The fence ended a {Kind} stream of capability {CapabilityId} on share {ShareId}: its live ref is of epoch {StreamEpoch}, {Status} {Reason}")]
    public static partial void StreamFenced(ILogger logger, string kind, string capabilityId, string shareId, ulong streamEpoch, string status, string reason);

    // 1030–1039: calls refused (rate-limited: one line per reason per interval, with the count left out).
    [LoggerMessage(EventId = 1030, EventName = "CallRefused", Level = LogLevel.Information,
        Message = "{Method} refused {Status} {Reason}: {Detail} ({Suppressed} more refusals for this reason not logged before this one)")]
    public static partial void CallRefused(ILogger logger, string method, string status, string reason, string detail, long suppressed);

    // 1040–1049: storage.
    [LoggerMessage(EventId = 1040, EventName = "CommitRetried", Level = LogLevel.Information,
        Message = "A group commit of {Writes} writes lost a race with another server on the database (attempt {Attempt} of {MaxAttempts}); it runs again: {Error}")]
    public static partial void CommitRetried(ILogger logger, int writes, int attempt, int maxAttempts, string error);

    [LoggerMessage(EventId = 1041, EventName = "CommitFailed", Level = LogLevel.Error,
        Message = "A group commit of {Writes} writes failed after {Attempts} attempts: each write was answered UNAVAILABLE storage and nothing of it was applied")]
    public static partial void CommitFailed(ILogger logger, int writes, int attempts, Exception error);

    [LoggerMessage(EventId = 1042, EventName = "StoreUnavailable", Level = LogLevel.Error,
        Message = "The store does not answer: health is NOT_SERVING until it does ({Error})")]
    public static partial void StoreUnavailable(ILogger logger, string error);

    [LoggerMessage(EventId = 1043, EventName = "StoreAvailable", Level = LogLevel.Information,
        Message = "The store answers again after {Outage}: health is SERVING")]
    public static partial void StoreAvailable(ILogger logger, TimeSpan outage);

    // 1050–1059: hostile-load limits, logged where each is enforced (rate-limited as refusals are).
    [LoggerMessage(EventId = 1050, EventName = "LimitReached", Level = LogLevel.Warning,
        Message = "{Limit} = {Value} {Unit} reached by capability {CapabilityId} on share {ShareId}: {Consequence} ({Suppressed} more for this limit not logged before this one)")]
    public static partial void LimitReached(ILogger logger, string limit, long value, string unit, string capabilityId, string shareId, string consequence, long suppressed);
}
