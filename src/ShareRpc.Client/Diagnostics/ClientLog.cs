using Microsoft.Extensions.Logging;
using Sharerpc.V1;

namespace ShareRpc.Client.Diagnostics;

/// <summary>
/// Every log event of the client SDK, source-generated (docs/design.md, "Diagnostics"; the catalogue
/// with what to do about each: docs/operate.md). Event ids 2000–2099 are the
/// client's (the server's are 1000–1099): 2000s the AppendOps sender, 2010s the outbox, 2020s
/// subscriptions. Nothing here takes a secret, a live ref or a whole sturdy ref: a share is named by
/// its id and its server, a sturdy ref only as <see cref="Redacted"/> shows it (no secret).
/// Levels are for an operator: Warning when the sender cannot reach the server (it keeps trying),
/// Error when it stopped for good and ops wait for a person.
/// </summary>
internal static partial class ClientLog
{
    // 2000–2009: the sender of one share.
    [LoggerMessage(EventId = 2000, EventName = "Connected", Level = LogLevel.Debug,
        Message = "AppendOps stream to {Server} for share {ShareId} open: unacked batches go first, oldest first")]
    public static partial void Connected(ILogger logger, string server, string shareId);

    [LoggerMessage(EventId = 2001, EventName = "Reconnecting", Level = LogLevel.Warning,
        Message = "AppendOps stream to {Server} for share {ShareId} failed ({Error}); reconnecting in {Delay} (attempt {Attempt}); unacked batches are resent byte for byte")]
    public static partial void Reconnecting(ILogger logger, string server, string shareId, string error, TimeSpan delay, int attempt);

    [LoggerMessage(EventId = 2002, EventName = "Reconnected", Level = LogLevel.Information,
        Message = "AppendOps stream to {Server} for share {ShareId} is acking again after {Failures} failed attempts over {Outage}")]
    public static partial void Reconnected(ILogger logger, string server, string shareId, int failures, TimeSpan outage);

    [LoggerMessage(EventId = 2003, EventName = "Redeemed", Level = LogLevel.Information,
        Message = "Share {ShareId}: the server answered {Reason}; redeemed {SturdyRef} again: epoch {Epoch}")]
    public static partial void Redeemed(ILogger logger, string shareId, string reason, string sturdyRef, ulong epoch);

    [LoggerMessage(EventId = 2004, EventName = "SenderStopped", Level = LogLevel.Error,
        Message = "The sender for share {ShareId} on {Server} stopped for good: {Status} {Reason}: {Detail}. Its ops stay in the outbox (sharerpc outbox status)")]
    public static partial void SenderStopped(ILogger logger, string shareId, string server, string status, string reason, string detail);

    [LoggerMessage(EventId = 2005, EventName = "PoisonOpSetAside", Level = LogLevel.Warning,
        Message = "Op {OpId} (seq {Seq}) of share {ShareId} set aside: the server refuses it ({Status} {Reason}, field {Field}: {Detail}); the ops behind it go on. Drop or retry it (sharerpc outbox drop|retry)")]
    public static partial void PoisonOpSetAside(ILogger logger, string opId, ulong seq, string shareId, string status, string reason, string field, string detail);

    // 2010–2019: the outbox.
    [LoggerMessage(EventId = 2010, EventName = "Replaying", Level = LogLevel.Information,
        Message = "Outbox {Outbox}: share {ShareId} has {Pending} ops left unacked by an earlier run ({Sealed} sealed batches); replaying them")]
    public static partial void Replaying(ILogger logger, string outbox, string shareId, long pending, long @sealed);

    [LoggerMessage(EventId = 2011, EventName = "Compacted", Level = LogLevel.Information,
        Message = "Outbox {Outbox}: share {ShareId}: {Ops} acked ops older than {Retention} removed")]
    public static partial void Compacted(ILogger logger, string outbox, string shareId, int ops, TimeSpan retention);

    // 2020–2029: subscriptions.
    [LoggerMessage(EventId = 2020, EventName = "SubscriptionReconnecting", Level = LogLevel.Warning,
        Message = "Subscribe to {Server} for share {ShareId} failed ({Error}); resuming from cursor {Cursor} in {Delay}")]
    public static partial void SubscriptionReconnecting(ILogger logger, string server, string shareId, string error, ulong cursor, TimeSpan delay);

    [LoggerMessage(EventId = 2021, EventName = "SubscriptionGaveUp", Level = LogLevel.Error,
        Message = "Subscribe to {Server} for share {ShareId} gave up after {Outage} without an answer: {Error}")]
    public static partial void SubscriptionGaveUp(ILogger logger, string server, string shareId, TimeSpan outage, string error);

    /// <summary>A sturdy ref without its secret: <c>sharerpc://HOST:PORT/SHARE/CAPABILITY#…</c>.</summary>
    public static string Redacted(SturdyRef sturdyRef)
    {
        var text = sturdyRef.ToString();
        var hash = text.IndexOf('#', StringComparison.Ordinal);
        return hash < 0 ? text : text[..(hash + 1)] + "…";
    }
}
