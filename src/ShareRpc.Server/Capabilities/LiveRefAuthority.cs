using Sharerpc.V1;

namespace ShareRpc.Server.Capabilities;

/// <summary>Issues and checks live refs with the server key.</summary>
internal sealed class LiveRefAuthority(byte[] key, TimeProvider clock)
{
    public TimeProvider Clock { get; } = clock;

    public string Issue(LiveRefClaims claims) => LiveRef.Sign(claims, key);

    /// <summary>Reads the bearer token from an <c>authorization</c> header value and verifies it.</summary>
    public LiveRefClaims AuthenticateHeader(string? authorization)
    {
        if (string.IsNullOrEmpty(authorization))
            throw ShareRpcException.Unauthenticated(Reasons.MissingToken, "this call needs 'authorization: Bearer <live ref>' (redeem a sturdy ref first)");
        const string bearer = "Bearer ";
        if (!authorization.StartsWith(bearer, StringComparison.OrdinalIgnoreCase))
            throw ShareRpcException.Unauthenticated(Reasons.InvalidToken, "authorization must be 'Bearer <live ref>'");
        return Authenticate(authorization[bearer.Length..].Trim());
    }

    public LiveRefClaims Authenticate(string token)
    {
        var check = LiveRef.Verify(token, key, Clock.GetUtcNow(), out var claims);
        return check switch
        {
            LiveRefCheck.Valid => claims!,
            LiveRefCheck.Expired => throw ShareRpcException.Unauthenticated(Reasons.Expired, "the live ref has expired; redeem the sturdy ref again"),
            _ => throw ShareRpcException.Unauthenticated(Reasons.InvalidToken, "the live ref is malformed or not signed by this server"),
        };
    }
}

/// <summary>The checks every authorized call makes against current storage state.</summary>
internal static class CapabilityChecks
{
    /// <summary>
    /// In order: the share exists (NOT_FOUND); the capability belongs to it and is not revoked
    /// (PERMISSION_DENIED revoked), not expired (PERMISSION_DENIED capability-expired); the live ref's
    /// epoch is the share's (UNAUTHENTICATED epoch-stale); it holds <paramref name="needed"/> (PERMISSION_DENIED rights).
    /// </summary>
    public static void EnsureUsable(Storage.ShareRecord? share, Storage.CapabilityRecord? cap, LiveRefClaims claims, DateTimeOffset now, Rights needed)
    {
        if (share is null) throw ShareRpcException.NotFound(Reasons.ShareNotFound, $"share {claims.ShareId} does not exist");
        if (cap is null || cap.ShareRowId != share.RowId)
            throw ShareRpcException.PermissionDenied(Reasons.Revoked, "the capability no longer exists");
        if (cap.RevokedAt is not null) throw ShareRpcException.PermissionDenied(Reasons.Revoked, "the capability has been revoked");
        if (cap.ExpiresAt is { } x && x <= now) throw ShareRpcException.PermissionDenied(Reasons.CapabilityExpired, "the capability has expired");
        if (claims.ExpiresAt <= now) throw ShareRpcException.Unauthenticated(Reasons.Expired, "the live ref has expired; redeem the sturdy ref again");
        if (claims.Epoch != share.Epoch)
            throw ShareRpcException.Unauthenticated(Reasons.EpochStale,
                $"the live ref is from epoch {claims.Epoch}, the share is at epoch {share.Epoch}; redeem again");
        if (!needed.IsSubsetOf(cap.Rights & claims.Rights))
            throw ShareRpcException.PermissionDenied(Reasons.Rights, $"the capability lacks {needed & ~(cap.Rights & claims.Rights)}");
    }
}
