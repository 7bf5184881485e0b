using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;
using ShareRpc.Server.Apply;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Diagnostics;
using ShareRpc.Server.Storage;
using ShareRpc.Server.Storage.Sqlite;
using ShareRpc.Server.Subscribe;
using Sharerpc.V1;

namespace ShareRpc.Server;

/// <summary>
/// The service logic of all seven RPCs over an <see cref="IShareStore"/>, independent of the
/// wire: Service/ adapts it to Grpc.AspNetCore. Every write goes through one <see cref="GroupCommitter"/>.
/// </summary>
internal sealed partial class ShareEngine : IAsyncDisposable
{
    private readonly IShareStore _store;
    private readonly bool _ownsStore;
    private readonly LiveRefAuthority _authority;
    private readonly TimeProvider _clock;

    public ShareEngine(IShareStore store, byte[] serverKey, ShareRpcServerOptions options, TimeProvider? clock = null, bool ownsStore = true, ILoggerFactory? loggerFactory = null)
    {
        options.Validate();
        _store = store;
        _ownsStore = ownsStore;
        Options = options;
        _clock = clock ?? TimeProvider.System;
        _authority = new LiveRefAuthority(serverKey, _clock);
        Committer = new GroupCommitter(store, new GroupCommitter.CommitLimits(
            options.MaxWritesPerCommit, options.MaxOpsPerCommit, options.MaxBytesPerCommit,
            options.MaxQueuedWrites, options.MaxQueuedWriteBytes, options.MaxCommitAttempts), options.Faults);
        ReadBudget = new ByteBudget(options.MaxBufferedReadBytes, nameof(options.MaxBufferedReadBytes));
        // Logs and metrics per engine, not per process (docs/design.md, "Diagnostics").
        StoreHealth = new StoreHealth(store, _clock, () => Diagnostics!);
        Diagnostics = new ServerDiagnostics(loggerFactory, _clock, () => Committer.QueuedCount, () => StoreHealth.Up);
        Committer.Retried += Diagnostics.CommitRetried;
        Committer.Failed += Diagnostics.CommitFailed;
        if (store is IShareChangeFeed feed)
        {
            // Commits by other server processes on the same database wake this process's
            // subscribers and fence its open streams (a hint only: they re-read storage).
            _feedLoop = Task.Run(() => feed.RunAsync(OnStoreChange, _feedStop.Token));
        }
    }

    private readonly CancellationTokenSource _feedStop = new();
    private readonly Task? _feedLoop;

    private void OnStoreChange(ShareChange change)
    {
        if (change.ShareId is null) Notifier.PublishAll();
        else Notifier.Publish(change.ShareId, change.Cursor, change.Epoch);
    }

    /// <summary>Opens the embedded SQLite store and the server key in <see cref="ShareRpcServerOptions.DataDirectory"/>.</summary>
    public static ShareEngine OpenSqlite(ShareRpcServerOptions options, TimeProvider? clock = null, ILoggerFactory? loggerFactory = null)
    {
        options.Validate();
        var key = options.LoadServerKey();
        var store = SqliteShareStore.Open(options.DataDirectory, options.FsyncEveryCommit);
        return new ShareEngine(store, key, options, clock, ownsStore: true, loggerFactory);
    }

    /// <summary>This engine's logs and metrics.</summary>
    public ServerDiagnostics Diagnostics { get; }

    /// <summary>Whether the store answers (the health check's probe).</summary>
    public StoreHealth StoreHealth { get; }

    public ShareRpcServerOptions Options { get; }
    public GroupCommitter Committer { get; }
    public ShareNotifier Notifier { get; } = new();

    /// <summary>Server-wide budget of documents and log entries read and not yet sent (<see cref="ShareRpcServerOptions.MaxBufferedReadBytes"/>).</summary>
    public ByteBudget ReadBudget { get; }

    /// <summary>What the apply path looked up (tests, metrics).</summary>
    public ApplyStats Stats { get; } = new();

    /// <summary>The injected clock (live-ref expiry, heartbeats, timeouts).</summary>
    public TimeProvider Clock => _clock;
    public IShareStore Store => _store;
    private ShareRpcLimits Limits => Options.Limits;

    /// <summary>Verifies <c>authorization: Bearer &lt;live ref&gt;</c> (signature and expiry; the rest is checked against storage per call).</summary>
    public LiveRefClaims Authenticate(string? authorization) => _authority.AuthenticateHeader(authorization);

    // ------------------------------------------------------------------ CreateShare

    public async Task<CreateShareResponse> CreateShareAsync(CreateShareRequest req, string? authorization, RefEndpoint endpoint, CancellationToken ct = default)
    {
        if (Options.CreatorToken is { } token)
        {
            var presented = authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
                ? authorization["Bearer ".Length..].Trim() : "";
            if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(token))))
                throw ShareRpcException.Unauthenticated(Reasons.CreatorToken, "CreateShare needs 'authorization: Bearer <creator token>' on this server");
        }
        if (string.IsNullOrEmpty(req.ShareKey)) throw ShareRpcException.InvalidArgument("share_key", "must not be empty");
        BatchValidator.MaxBytes(req.ShareKey, "share_key", nameof(Limits.MaxShareKeyLength), Limits.MaxShareKeyLength);
        if (req.ShareKey.Any(char.IsControl)) throw ShareRpcException.InvalidArgument("share_key", "must not contain control characters");
        CheckSecret(req.OwnerSecret.Length, "owner_secret");
        BatchValidator.MaxBytes(req.Title, "title", nameof(Limits.MaxTitleLength), Limits.MaxTitleLength);
        if (req.Labels.Count > Limits.MaxLabels)
            throw ShareRpcException.LimitExceeded("labels", nameof(Limits.MaxLabels), Limits.MaxLabels, "labels", req.Labels.Count);
        foreach (var (k, v) in req.Labels)
        {
            if (k.Length == 0) throw ShareRpcException.InvalidArgument("labels", "a label key must not be empty");
            BatchValidator.MaxBytes(k, "labels", nameof(Limits.MaxLabelLength), Limits.MaxLabelLength); // the key may be what is too long: not echoed
            BatchValidator.MaxBytes(v, $"labels[{k}]", nameof(Limits.MaxLabelLength), Limits.MaxLabelLength);
        }
        var now = _clock.GetUtcNow();
        var result = await Committer.SubmitAsync((tx, c) => CapabilityOps.CreateShareAsync(tx, req, endpoint, now, c), ct).ConfigureAwait(false);
        Diagnostics.ShareCreated(result.Response);
        return result.Response;
    }

    private void CheckSecret(int length, string field)
    {
        if (length < Secrets.MinSecretBytes)
            throw ShareRpcException.InvalidArgument(field, $"must be at least {Secrets.MinSecretBytes} random bytes, got {length}");
        if (length > Limits.MaxSecretBytes)
            throw ShareRpcException.LimitExceeded(field, nameof(Limits.MaxSecretBytes), Limits.MaxSecretBytes, "bytes", length);
    }

    // ------------------------------------------------------------------ RedeemShare

    public async Task<RedeemShareResponse> RedeemAsync(RedeemShareRequest req, CancellationToken ct = default)
    {
        if (!SturdyRef.TryParse(req.SturdyRef, out var sturdy, out var error))
            throw ShareRpcException.InvalidArgument("sturdy_ref", error!);
        var reader = await _store.BeginReadAsync(ct).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var share = await reader.GetShareAsync(sturdy!.ShareId, ct).ConfigureAwait(false)
            ?? throw ShareRpcException.NotFound(Reasons.ShareNotFound, $"share {sturdy.ShareId} does not exist");
        var cap = await reader.GetCapabilityAsync(sturdy.CapabilityId, ct).ConfigureAwait(false);
        // The secret is checked before anything about the capability is revealed.
        if (cap is null || cap.ShareRowId != share.RowId || !Secrets.Matches(sturdy.Secret, cap.SecretHash))
            throw ShareRpcException.PermissionDenied(Reasons.BadSecret, "the sturdy ref's secret does not match");
        if (cap.RevokedAt is not null) throw ShareRpcException.PermissionDenied(Reasons.Revoked, "the capability has been revoked");
        var now = _clock.GetUtcNow();
        if (cap.ExpiresAt is { } x && x <= now) throw ShareRpcException.PermissionDenied(Reasons.CapabilityExpired, "the capability has expired");

        var expires = now + Options.LiveRefLifetime;
        if (cap.ExpiresAt is { } cx && cx < expires) expires = cx;
        var claims = new LiveRefClaims(share.ShareId, cap.CapabilityId, cap.Rights, share.Epoch, expires);
        var response = new RedeemShareResponse
        {
            ShareId = share.ShareId,
            CapabilityId = cap.CapabilityId,
            LiveRef = _authority.Issue(claims),
            Epoch = share.Epoch,
            Cursor = share.Cursor,
            LiveRefExpiresAt = Timestamp.FromDateTimeOffset(expires),
        };
        response.Rights.AddRange(cap.Rights.ToProto());
        Diagnostics.Redeemed(claims);
        return response;
    }

    // ------------------------------------------------------------------ AppendOps

    /// <summary>Validates and applies one batch; returns the ack once committed.</summary>
    public async Task<AppendOpsResponse> AppendAsync(LiveRefClaims claims, AppendOpsRequest batch, CancellationToken ct = default)
    {
        var pending = await EnqueueAppendAsync(claims, batch, ct).ConfigureAwait(false);
        return await pending.ConfigureAwait(false);
    }

    /// <summary>
    /// Validates a batch and queues it; returns (once queued) the task of its ack. Batches queued
    /// one after the other apply in that order: this is the pipelined AppendOps path. The batch
    /// takes its size in bytes (<c>bytes</c>, as read; its serialized size when 0) from
    /// MaxQueuedWriteBytes until it is committed, and waits for room there first.
    /// </summary>
    public async Task<Task<AppendOpsResponse>> EnqueueAppendAsync(LiveRefClaims claims, AppendOpsRequest batch, CancellationToken ct = default, long bytes = 0)
    {
        BatchValidator.Validate(batch, Limits);
        var started = _clock.GetTimestamp();
        var activity = ServerTracing.StartApply(claims, batch); // links to each op's producer span (docs/design.md, "Diagnostics")
        try
        {
            var committed = await Committer.EnqueueAsync(
                (tx, c) => BatchApplier.ApplyAsync(tx, claims, batch, _clock.GetUtcNow(), c, Stats), ct,
                claims.ShareId, batch.Ops.Count, bytes > 0 ? bytes : batch.CalculateSize()).ConfigureAwait(false);
            return Completed(committed, started, activity);
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            activity?.Dispose();
            throw;
        }
    }

    private async Task<AppendOpsResponse> Completed(Task<BatchOutcome> committed, long started, Activity? activity)
    {
        using (activity)
        {
            BatchOutcome outcome;
            try
            {
                outcome = await committed.ConfigureAwait(false);
            }
            catch (Exception e)
            {
                activity?.SetStatus(ActivityStatusCode.Error, e.Message);
                throw;
            }

            Diagnostics.Metrics.BatchCommitted(_clock.GetElapsedTime(started), outcome.Applied, outcome.Duplicates, outcome.Rejected);
            if (outcome.Applied > 0) Notifier.Publish(outcome.ShareId, outcome.Cursor, 0);
            activity?.SetTag("sharerpc.cursor", outcome.Cursor);
            activity?.SetTag("sharerpc.ops.applied", outcome.Applied);
            activity?.SetTag("sharerpc.ops.duplicate", outcome.Duplicates);
            activity?.SetTag("sharerpc.ops.rejected", outcome.Rejected);
            return outcome.Response;
        }
    }

    // ------------------------------------------------------------------ Delegate / Revoke

    public async Task<DelegateCapabilityResponse> DelegateAsync(LiveRefClaims claims, DelegateCapabilityRequest req, RefEndpoint endpoint, CancellationToken ct = default)
    {
        if (req.Rights.Count == 0) throw ShareRpcException.InvalidArgument("rights", "name at least one right");
        if (!RightsFormat.TryFromProto(req.Rights, out var rights, out var error)) throw ShareRpcException.InvalidArgument("rights", error!);
        CheckSecret(req.Secret.Length, "secret");
        BatchValidator.MaxBytes(req.Note, "note", nameof(Limits.MaxTitleLength), Limits.MaxTitleLength);
        if (req.ExpiresAt is not null)
        {
            try { _ = req.ExpiresAt.ToDateTimeOffset(); }
            catch (InvalidOperationException) { throw ShareRpcException.InvalidArgument("expires_at", "is not a valid timestamp"); }
            catch (ArgumentOutOfRangeException) { throw ShareRpcException.InvalidArgument("expires_at", "is not a valid timestamp"); }
        }
        var now = _clock.GetUtcNow();
        var response = await Committer.SubmitAsync((tx, c) => CapabilityOps.DelegateAsync(tx, claims, req, rights, endpoint, now, c), ct, claims.ShareId).ConfigureAwait(false);
        Diagnostics.Delegated(claims, response, rights);
        return response;
    }

    public async Task<RevokeCapabilityResponse> RevokeAsync(LiveRefClaims claims, RevokeCapabilityRequest req, CancellationToken ct = default)
    {
        if (req.TargetCase == RevokeCapabilityRequest.TargetOneofCase.None || (req.TargetCase == RevokeCapabilityRequest.TargetOneofCase.All && !req.All))
            throw ShareRpcException.InvalidArgument("target", "set capability_id or all = true");
        if (req.TargetCase == RevokeCapabilityRequest.TargetOneofCase.CapabilityId && !SturdyRef.IsValidId(req.CapabilityId))
            throw ShareRpcException.InvalidArgument("capability_id", "is not a capability id");
        var now = _clock.GetUtcNow();
        var result = await Committer.SubmitAsync((tx, c) => CapabilityOps.RevokeAsync(tx, claims, req, now, c), ct, claims.ShareId).ConfigureAwait(false);
        // Before returning: every open stream of this share learns the new epoch (the fence).
        Notifier.Publish(result.ShareId, 0, result.Epoch);
        Diagnostics.Revoked(claims, result.Response);
        return result.Response;
    }

    public async ValueTask DisposeAsync()
    {
        await _feedStop.CancelAsync().ConfigureAwait(false);
        if (_feedLoop is not null)
        {
            try { await _feedLoop.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        _feedStop.Dispose();
        await Committer.DisposeAsync().ConfigureAwait(false);
        if (_ownsStore) await _store.DisposeAsync().ConfigureAwait(false);
        Diagnostics.Dispose();
    }
}
