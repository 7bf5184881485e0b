using ShareRpc.Server.Storage;
using Sharerpc.V1;

namespace ShareRpc.Server.Capabilities;

/// <summary>Where sturdy refs point: HOST:PORT and whether TLS is used.</summary>
internal readonly record struct RefEndpoint(string Host, int Port, bool Tls)
{
    /// <summary>Parses "HOST:PORT" ("[::1]:PORT" for IPv6).</summary>
    public static RefEndpoint Parse(string hostPort, bool tls) =>
        TryParse(hostPort, out var parsed) ? parsed with { Tls = tls } : throw new FormatException($"'{hostPort}' is not HOST:PORT");

    /// <summary>"HOST:PORT" with a port in 1..65535; an IPv6 host in brackets.</summary>
    public static bool TryParse(string hostPort, out RefEndpoint endpoint)
    {
        endpoint = default;
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostPort.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535 || (hostPort.IndexOf(':') != colon && !hostPort.StartsWith('[')))
            return false;
        endpoint = new RefEndpoint(hostPort[..colon], port, false);
        return true;
    }
}

/// <summary>Capability writes, each run inside a write transaction (the committer's).</summary>
internal static class CapabilityOps
{
    public sealed record CreateResult(CreateShareResponse Response, long ShareRowId);
    public sealed record RevokeResult(RevokeCapabilityResponse Response, long ShareRowId, string ShareId, ulong Epoch, IReadOnlySet<string> Revoked);

    public static async Task<CreateResult> CreateShareAsync(IShareTransaction tx, CreateShareRequest req, RefEndpoint endpoint, DateTimeOffset now, CancellationToken ct = default)
    {
        var secret = req.OwnerSecret.ToByteArray();
        var existing = await tx.GetShareByKeyAsync(req.ShareKey, ct).ConfigureAwait(false);
        if (existing is not null)
        {
            var caps = await tx.GetCapabilitiesAsync(existing.RowId, ct).ConfigureAwait(false);
            var owner = caps.FirstOrDefault(c => c.ParentRowId is null);
            if (owner is null || !Secrets.Matches(secret, owner.SecretHash))
                throw new ShareRpcException(ShareRpcStatus.AlreadyExists, Reasons.ShareKeyTaken,
                    "a share with this share_key exists and was created with another owner_secret");
            return new CreateResult(new CreateShareResponse
            {
                ShareId = existing.ShareId,
                SturdyRef = new SturdyRef(endpoint.Host, endpoint.Port, endpoint.Tls, existing.ShareId, owner.CapabilityId, secret).ToString(),
                Epoch = existing.Epoch,
                Created = false,
            }, existing.RowId);
        }

        var shareId = Secrets.NewId();
        var capId = Secrets.NewId();
        var labels = new Dictionary<string, string>(req.Labels, StringComparer.Ordinal);
        var row = await tx.InsertShareAsync(shareId, req.ShareKey, req.Title, labels, now, ct).ConfigureAwait(false);
        await tx.InsertCapabilityAsync(capId, row, null, Secrets.Hash(secret), Rights.All, null, "owner", now, ct).ConfigureAwait(false);
        var share = await tx.GetShareAsync(shareId, ct).ConfigureAwait(false);
        return new CreateResult(new CreateShareResponse
        {
            ShareId = shareId,
            SturdyRef = new SturdyRef(endpoint.Host, endpoint.Port, endpoint.Tls, shareId, capId, secret).ToString(),
            Epoch = share!.Epoch,
            Created = true,
        }, row);
    }

    public static async Task<DelegateCapabilityResponse> DelegateAsync(IShareTransaction tx, LiveRefClaims claims, DelegateCapabilityRequest req,
        Rights rights, RefEndpoint endpoint, DateTimeOffset now, CancellationToken ct = default)
    {
        var share = await tx.LockShareAsync(claims.ShareId, ct).ConfigureAwait(false);
        var parent = share is null ? null : await tx.GetCapabilityAsync(claims.CapabilityId, ct).ConfigureAwait(false);
        CapabilityChecks.EnsureUsable(share, parent, claims, now, Rights.Delegate);
        if (!rights.IsSubsetOf(parent!.Rights))
            throw ShareRpcException.PermissionDenied(Reasons.Rights,
                $"a delegate cannot hold more than its parent: {rights & ~parent.Rights} is not held");

        DateTimeOffset? expires = req.ExpiresAt is null ? null : req.ExpiresAt.ToDateTimeOffset();
        if (expires is { } e && e <= now) throw ShareRpcException.InvalidArgument("expires_at", "must be in the future");
        if (parent.ExpiresAt is { } pe && (expires is null || expires > pe)) expires = pe; // never outlives its parent

        var secret = req.Secret.ToByteArray();
        var hash = Secrets.Hash(secret);
        var existing = await tx.GetCapabilityBySecretHashAsync(share!.RowId, hash, ct).ConfigureAwait(false);
        if (existing is not null)
        {
            if (existing.ParentRowId != parent.RowId || existing.Rights != rights)
                throw new ShareRpcException(ShareRpcStatus.AlreadyExists, Reasons.SecretTaken,
                    "a capability with this secret exists with another parent or other rights");
            return Response(existing.CapabilityId);
        }
        var capId = Secrets.NewId();
        await tx.InsertCapabilityAsync(capId, share.RowId, parent.RowId, hash, rights, expires, req.Note, now, ct).ConfigureAwait(false);
        return Response(capId);

        DelegateCapabilityResponse Response(string id) => new()
        {
            CapabilityId = id,
            SturdyRef = new SturdyRef(endpoint.Host, endpoint.Port, endpoint.Tls, share.ShareId, id, secret).ToString(),
        };
    }

    /// <summary>
    /// Revokes the target and everything delegated from it (or, with <c>all</c>, everything the
    /// caller delegated, transitively — for the owner: every capability but its own), and bumps
    /// the epoch in the same transaction. The target must be the caller or one of its descendants.
    /// </summary>
    public static async Task<RevokeResult> RevokeAsync(IShareTransaction tx, LiveRefClaims claims, RevokeCapabilityRequest req, DateTimeOffset now, CancellationToken ct = default)
    {
        var share = await tx.LockShareAsync(claims.ShareId, ct).ConfigureAwait(false);
        var caller = share is null ? null : await tx.GetCapabilityAsync(claims.CapabilityId, ct).ConfigureAwait(false);
        CapabilityChecks.EnsureUsable(share, caller, claims, now, Rights.Revoke);

        var caps = await tx.GetCapabilitiesAsync(share!.RowId, ct).ConfigureAwait(false);
        var children = caps.Where(c => c.ParentRowId is not null).ToLookup(c => c.ParentRowId!.Value);
        List<CapabilityRecord> subtree;
        switch (req.TargetCase)
        {
            case RevokeCapabilityRequest.TargetOneofCase.CapabilityId:
                var target = caps.FirstOrDefault(c => c.CapabilityId == req.CapabilityId)
                    ?? throw ShareRpcException.NotFound(Reasons.CapabilityNotFound, $"capability {req.CapabilityId} is not in this share");
                if (!IsSelfOrDescendant(target, caller!, caps))
                    throw ShareRpcException.PermissionDenied(Reasons.Rights, "a capability can revoke only itself and what it delegated");
                subtree = Collect(target, children, includeRoot: true);
                break;
            case RevokeCapabilityRequest.TargetOneofCase.All when req.All:
                subtree = Collect(caller!, children, includeRoot: false);
                break;
            default:
                throw ShareRpcException.InvalidArgument("target", "set capability_id or all = true");
        }

        var newly = subtree.Where(c => c.RevokedAt is null).ToList();
        await tx.MarkRevokedAsync(newly.Select(c => c.RowId).ToList(), now, ct).ConfigureAwait(false);
        var epoch = share.Epoch + 1;
        await tx.UpdateShareHeadAsync(share.RowId, epoch, share.Cursor, ct).ConfigureAwait(false);
        var response = new RevokeCapabilityResponse { Epoch = epoch };
        response.RevokedCapabilityIds.AddRange(newly.Select(c => c.CapabilityId));
        return new RevokeResult(response, share.RowId, share.ShareId, epoch, newly.Select(c => c.CapabilityId).ToHashSet(StringComparer.Ordinal));
    }

    private static bool IsSelfOrDescendant(CapabilityRecord target, CapabilityRecord ancestor, IReadOnlyList<CapabilityRecord> caps)
    {
        var byRow = caps.ToDictionary(c => c.RowId);
        for (CapabilityRecord? c = target; c is not null; c = c.ParentRowId is { } p && byRow.TryGetValue(p, out var parent) ? parent : null)
            if (c.RowId == ancestor.RowId) return true;
        return false;
    }

    private static List<CapabilityRecord> Collect(CapabilityRecord root, ILookup<long, CapabilityRecord> children, bool includeRoot)
    {
        var result = new List<CapabilityRecord>();
        var stack = new Stack<CapabilityRecord>();
        if (includeRoot) result.Add(root);
        foreach (var c in children[root.RowId]) stack.Push(c);
        while (stack.Count > 0)
        {
            var c = stack.Pop();
            result.Add(c);
            foreach (var child in children[c.RowId]) stack.Push(child);
        }
        return result;
    }
}
