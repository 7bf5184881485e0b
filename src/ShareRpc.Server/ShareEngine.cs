using System.Buffers.Text;
using System.Diagnostics;
using System.Runtime.CompilerServices;
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
internal sealed class ShareEngine : IAsyncDisposable
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
        Committer = new GroupCommitter(store, options.MaxWritesPerCommit, options.MaxQueuedWrites, options.Faults, options.MaxCommitAttempts);
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

    /// <summary>Counts an open stream of <paramref name="kind"/> (<see cref="StreamKinds"/>) until the returned object is disposed.</summary>
    public IDisposable TrackStream(string kind) => Diagnostics.Metrics.StreamOpened(kind);

    /// <summary>This engine's logs and metrics.</summary>
    public ServerDiagnostics Diagnostics { get; }

    /// <summary>Whether the store answers (the health check's probe).</summary>
    public StoreHealth StoreHealth { get; }

    public ShareRpcServerOptions Options { get; }
    public GroupCommitter Committer { get; }
    public ShareNotifier Notifier { get; } = new();
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
        if (req.ShareKey.Length > Limits.MaxShareKeyLength)
            throw ShareRpcException.LimitExceeded("share_key", nameof(Limits.MaxShareKeyLength), Limits.MaxShareKeyLength, "chars", req.ShareKey.Length);
        if (req.ShareKey.Any(char.IsControl)) throw ShareRpcException.InvalidArgument("share_key", "must not contain control characters");
        CheckSecret(req.OwnerSecret.Length, "owner_secret");
        if (req.Title.Length > Limits.MaxTitleLength)
            throw ShareRpcException.LimitExceeded("title", nameof(Limits.MaxTitleLength), Limits.MaxTitleLength, "chars", req.Title.Length);
        if (req.Labels.Count > Limits.MaxLabels)
            throw ShareRpcException.LimitExceeded("labels", nameof(Limits.MaxLabels), Limits.MaxLabels, "labels", req.Labels.Count);
        foreach (var (k, v) in req.Labels)
        {
            if (k.Length == 0) throw ShareRpcException.InvalidArgument("labels", "a label key must not be empty");
            if (k.Length > Limits.MaxLabelLength || v.Length > Limits.MaxLabelLength)
                throw ShareRpcException.LimitExceeded($"labels[{k}]", nameof(Limits.MaxLabelLength), Limits.MaxLabelLength, "chars", Math.Max(k.Length, v.Length));
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
    /// one after the other apply in that order: this is the pipelined AppendOps path.
    /// </summary>
    public async Task<Task<AppendOpsResponse>> EnqueueAppendAsync(LiveRefClaims claims, AppendOpsRequest batch, CancellationToken ct = default)
    {
        BatchValidator.Validate(batch, Limits);
        var started = _clock.GetTimestamp();
        var activity = ServerTracing.StartApply(claims, batch); // links to each op's producer span (docs/design.md, "Diagnostics")
        try
        {
            var committed = await Committer.EnqueueAsync(
                (tx, c) => BatchApplier.ApplyAsync(tx, claims, batch, _clock.GetUtcNow(), c), ct).ConfigureAwait(false);
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
        if (req.Note.Length > Limits.MaxTitleLength)
            throw ShareRpcException.LimitExceeded("note", nameof(Limits.MaxTitleLength), Limits.MaxTitleLength, "chars", req.Note.Length);
        if (req.ExpiresAt is not null)
        {
            try { _ = req.ExpiresAt.ToDateTimeOffset(); }
            catch (InvalidOperationException) { throw ShareRpcException.InvalidArgument("expires_at", "is not a valid timestamp"); }
            catch (ArgumentOutOfRangeException) { throw ShareRpcException.InvalidArgument("expires_at", "is not a valid timestamp"); }
        }
        var now = _clock.GetUtcNow();
        var response = await Committer.SubmitAsync((tx, c) => CapabilityOps.DelegateAsync(tx, claims, req, rights, endpoint, now, c), ct).ConfigureAwait(false);
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
        var result = await Committer.SubmitAsync((tx, c) => CapabilityOps.RevokeAsync(tx, claims, req, now, c), ct).ConfigureAwait(false);
        // Before returning: every open stream of this share learns the new epoch (the fence).
        Notifier.Publish(result.ShareId, 0, result.Epoch);
        Diagnostics.Revoked(claims, result.Response);
        return result.Response;
    }

    // ------------------------------------------------------------------ Reads

    private async Task<(IShareReader Reader, ShareRecord Share)> OpenAuthorizedAsync(LiveRefClaims claims, Rights needed, CancellationToken ct)
    {
        var reader = await _store.BeginReadAsync(ct).ConfigureAwait(false);
        try
        {
            var share = await reader.GetShareAsync(claims.ShareId, ct).ConfigureAwait(false);
            var cap = share is null ? null : await reader.GetCapabilityAsync(claims.CapabilityId, ct).ConfigureAwait(false);
            CapabilityChecks.EnsureUsable(share, cap, claims, _clock.GetUtcNow(), needed);
            return (reader, share!);
        }
        catch
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public const int DefaultSnapshotPageSize = 100;

    public async Task<GetSnapshotResponse> GetSnapshotAsync(LiveRefClaims claims, GetSnapshotRequest req, CancellationToken ct = default)
    {
        if (req.PageSize < 0) throw ShareRpcException.InvalidArgument("page_size", "must be >= 0");
        if (req.Collection.Length > Limits.MaxCollectionLength)
            throw ShareRpcException.LimitExceeded("collection", nameof(Limits.MaxCollectionLength), Limits.MaxCollectionLength, "chars", req.Collection.Length);
        var size = Math.Min(req.PageSize == 0 ? DefaultSnapshotPageSize : req.PageSize, Limits.MaxSnapshotPageSize);
        (string, string)? after = null;
        if (req.PageToken.Length > 0)
        {
            after = DecodePageToken(req.PageToken);
            if (req.Collection.Length > 0 && after.Value.Item1 != req.Collection)
                throw ShareRpcException.InvalidArgument("page_token", "belongs to another collection");
        }
        var (reader, share) = await OpenAuthorizedAsync(claims, Rights.Read, ct).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            var docs = await reader.ReadDocumentsAsync(share.RowId, req.Collection.Length == 0 ? null : req.Collection, after, size + 1, ct).ConfigureAwait(false);
            var response = new GetSnapshotResponse { Cursor = share.Cursor };
            foreach (var d in docs.Take(size)) response.Documents.Add(ToDocument(d));
            if (docs.Count > size)
            {
                var last = docs[size - 1];
                response.NextPageToken = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(last.Collection + "\n" + last.Key));
            }
            return response;
        }
    }

    private static (string, string) DecodePageToken(string token)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(token));
            var nl = text.IndexOf('\n');
            if (nl > 0) return (text[..nl], text[(nl + 1)..]);
        }
        catch (FormatException) { }
        throw ShareRpcException.InvalidArgument("page_token", "is not a token from an earlier page");
    }

    private static Document ToDocument(DocumentRecord d) => new()
    {
        Collection = d.Collection,
        Key = d.Key,
        Value = Google.Protobuf.ByteString.CopyFrom(d.Value),
        ContentType = d.ContentType,
        Version = d.Version,
        Cursor = d.Cursor,
    };

    /// <summary>
    /// Subscribe: optional snapshot in chunks, then the log from <c>from_cursor</c> (0 = the start),
    /// then live ops as they commit, with heartbeats when idle. Ends with the fence's errors when
    /// the share's epoch moves past the live ref's.
    /// </summary>
    public async IAsyncEnumerable<SubscribeResponse> SubscribeAsync(LiveRefClaims claims, SubscribeRequest req, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ulong next = Math.Max(req.FromCursor, 1);
        ulong head;
        var chunk = Limits.MaxSnapshotPageSize;

        // Watch before the first read (no lost wake-up), then authorize (and take the snapshot) in one read view.
        var signal = Notifier.Watch(claims.ShareId);
        IShareReader reader;
        ShareRecord share;
        try
        {
            (reader, share) = await OpenAuthorizedAsync(claims, Rights.Read, ct).ConfigureAwait(false);
        }
        catch
        {
            Notifier.Unwatch(claims.ShareId, signal);
            throw;
        }
        if (!signal.TryAddSubscriber(Limits.MaxSubscribersPerShare))
        {
            Notifier.Unwatch(claims.ShareId, signal);
            await reader.DisposeAsync().ConfigureAwait(false);
            Diagnostics.LimitReached(nameof(Limits.MaxSubscribersPerShare), Limits.MaxSubscribersPerShare, "subscribers", claims, "a Subscribe was refused RESOURCE_EXHAUSTED");
            throw ShareRpcException.LimitExceeded("subscribe", nameof(Limits.MaxSubscribersPerShare), Limits.MaxSubscribersPerShare, "subscribers", signal.Subscribers + 1);
        }
        try
        {
            signal.ObserveEpoch(share.Epoch);
            head = share.Cursor;
            var snapshotChunks = new List<Snapshot>();
            await using (reader.ConfigureAwait(false))
            {
                if (req.IncludeSnapshot)
                {
                    (string, string)? after = null;
                    while (true)
                    {
                        var docs = await reader.ReadDocumentsAsync(share.RowId, null, after, chunk + 1, ct).ConfigureAwait(false);
                        var snap = new Snapshot { Cursor = share.Cursor };
                        foreach (var d in docs.Take(chunk)) snap.Documents.Add(ToDocument(d));
                        snapshotChunks.Add(snap);
                        if (docs.Count <= chunk) break;
                        after = (docs[chunk - 1].Collection, docs[chunk - 1].Key);
                    }
                    snapshotChunks[^1].LastChunk = true;
                    next = share.Cursor + 1;
                }
            }
            foreach (var snap in snapshotChunks)
            {
                await EnsureFenceAsync(claims, signal, ct).ConfigureAwait(false);
                yield return new SubscribeResponse { Snapshot = snap };
            }

            while (true)
            {
                ct.ThrowIfCancellationRequested();
                var wake = signal.NextChange; // taken before reading: no lost wake-up
                IReadOnlyList<LogEntry> entries;
                var (r, s) = await OpenAuthorizedAsync(claims, Rights.Read, ct).ConfigureAwait(false);
                await using (r.ConfigureAwait(false))
                {
                    head = s.Cursor;
                    entries = next <= head ? await r.ReadLogAsync(s.RowId, next, chunk, ct).ConfigureAwait(false) : [];
                }
                foreach (var e in entries)
                {
                    await EnsureFenceAsync(claims, signal, ct).ConfigureAwait(false);
                    yield return new SubscribeResponse
                    {
                        Op = new CommittedOp { Cursor = e.Cursor, Op = BatchApplier.ToOp(e), ProducerId = e.ProducerId, CommittedAt = Timestamp.FromDateTimeOffset(e.CommittedAt) },
                    };
                    next = e.Cursor + 1;
                }
                if (entries.Count == chunk) continue; // catching up
                using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var delay = Task.Delay(Options.HeartbeatInterval, _clock, delayCts.Token);
                var woke = await Task.WhenAny(wake, delay).ConfigureAwait(false);
                await delayCts.CancelAsync().ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                if (woke == delay)
                {
                    await EnsureFenceAsync(claims, signal, ct).ConfigureAwait(false);
                    yield return new SubscribeResponse { Heartbeat = new Heartbeat { Cursor = Math.Max(head, signal.Cursor) } };
                }
            }
        }
        finally
        {
            signal.RemoveSubscriber();
            Notifier.Unwatch(claims.ShareId, signal);
        }
    }

    /// <summary>Completes when this process learns of an epoch newer than the live ref's (a revoke committed).</summary>
    public async Task WaitForFenceAsync(LiveRefClaims claims, CancellationToken ct)
    {
        var signal = Notifier.Watch(claims.ShareId);
        try
        {
            while (true)
            {
                var wake = signal.NextChange;
                if (signal.Epoch > claims.Epoch) return;
                await wake.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            Notifier.Unwatch(claims.ShareId, signal);
        }
    }

    /// <summary>Throws the error a call under <paramref name="claims"/> gets now (revoked, epoch-stale, rights …), if any.</summary>
    public async Task CheckAccessAsync(LiveRefClaims claims, Rights needed, CancellationToken ct = default)
    {
        var (reader, _) = await OpenAuthorizedAsync(claims, needed, ct).ConfigureAwait(false);
        await reader.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>When this process knows of a newer epoch, ends the stream with the fence's error.</summary>
    private async Task EnsureFenceAsync(LiveRefClaims claims, ShareSignal signal, CancellationToken ct)
    {
        if (signal.Epoch <= claims.Epoch) return;
        try
        {
            var (reader, _) = await OpenAuthorizedAsync(claims, Rights.Read, ct).ConfigureAwait(false); // throws revoked / epoch-stale
            await reader.DisposeAsync().ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            Diagnostics.Fenced(StreamKinds.Subscribe, claims, e);
            throw;
        }
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
