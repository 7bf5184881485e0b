using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using ShareRpc.Client.Capabilities;
using ShareRpc.Client.Diagnostics;
using ShareRpc.Client.Outbox;
using ShareRpc.Client.Subscribing;
using ShareRpc.Client.Transport;
using Sharerpc.V1;
using ShareRpcGrpc = Sharerpc.V1.ShareRpc;

namespace ShareRpc.Client;

/// <summary>
/// The ShareRpc client: creates and redeems shares, opens durable writers (outbox + sender per
/// share), subscribes with resume, reads snapshots, delegates and revokes.
/// </summary>
public sealed class ShareRpcClient : IAsyncDisposable
{
    private readonly ChannelPool _channels;
    private readonly ConcurrentDictionary<string, Lazy<ShareWriter>> _writers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _createLocks = new(StringComparer.Ordinal);
    private readonly Lazy<IOutboxStore> _outbox;
    private int _disposed;

    /// <summary>A client with its own channels, built from <paramref name="options"/> (see also <c>AddShareRpcClient</c>).</summary>
    public ShareRpcClient(ShareRpcClientOptions? options = null)
        : this(options ?? new ShareRpcClientOptions(), handlerFactory: null)
    {
    }

    /// <summary>Dependency injection: each channel's handler chain comes from <c>IHttpClientFactory</c>.</summary>
    internal ShareRpcClient(ShareRpcClientOptions options, Func<HttpMessageHandler>? handlerFactory)
    {
        Options = options;
        Options.Validate();
        _channels = new ChannelPool(Options.Channel, (Options.InitialBackoff, Options.MaxBackoff), handlerFactory);
        LiveRefs = new LiveRefCache(this);
        Logger = Options.LoggerFactory.CreateLogger(ShareRpcClientDiagnostics.LoggerCategory);
        Metrics = new ClientMetrics(Options.InstanceName
            ?? (Options.OutboxPath is { } path ? Path.GetFullPath(path) : "pid " + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        _outbox = new Lazy<IOutboxStore>(() => Options.OutboxEngine.Open(
            Options.OutboxPath ?? throw new InvalidOperationException("Set ShareRpcClientOptions.OutboxPath: writers and share creation need a durable outbox."),
            Options.Outbox,
            Options.TimeProvider));
    }

    public ShareRpcClientOptions Options { get; }

    /// <summary>The durable outbox (opened on first use).</summary>
    internal IOutboxStore Outbox => _outbox.Value;

    internal LiveRefCache LiveRefs { get; }

    /// <summary>The client's log (docs/design.md, "Diagnostics"): ClientLog's events.</summary>
    internal ILogger Logger { get; }

    /// <summary>The client's instruments on the meter ShareRpc.Client.</summary>
    internal ClientMetrics Metrics { get; }

    /// <summary>
    /// Creates a share, idempotent on <paramref name="shareKey"/>: the intent and its owner secret
    /// are written to the outbox before the call, so a retry after a crash or a lost response
    /// returns the same share (created=false) instead of orphaning one.
    /// </summary>
    public async Task<CreateShareResponse> CreateShareAsync(string server, string shareKey, string title = "", CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentException.ThrowIfNullOrEmpty(shareKey);
        var intent = await Outbox.GetOrAddShareIntentAsync(server, shareKey, title, RandomNumberGenerator.GetBytes(32)).ConfigureAwait(false);
        var request = new CreateShareRequest { ShareKey = shareKey, OwnerSecret = Google.Protobuf.ByteString.CopyFrom(intent.OwnerSecret), Title = intent.Title };
        CreateShareResponse response;
        try
        {
            response = await Stub(server).CreateShareAsync(request, UnaryOptions(Options.CreatorToken, cancellationToken)).ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            throw ShareRpcCallException.From(ex);
        }

        await Outbox.SetShareIntentResultAsync(server, shareKey, response.ShareId, response.SturdyRef, ShareIntentState.Created).ConfigureAwait(false);
        return response;
    }

    /// <summary>
    /// The sturdy ref of the share for this key, creating it if needed. However many tasks (or
    /// processes on the same outbox file) ask at once, they get one share.
    /// </summary>
    public async Task<string> EnsureShareAsync(string server, string shareKey, string title = "", CancellationToken cancellationToken = default)
    {
        var gate = _createLocks.GetOrAdd(server + "\n" + shareKey, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var known = await Outbox.GetShareIntentAsync(server, shareKey).ConfigureAwait(false);
            if (known is { State: ShareIntentState.Created, SturdyRef: { } sturdy })
            {
                return sturdy;
            }

            return (await CreateShareAsync(server, shareKey, title, cancellationToken).ConfigureAwait(false)).SturdyRef;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// For a share the server answers NOT_FOUND for (it forgot it): creates it again under the same
    /// key and secret, and returns the new sturdy ref.
    /// </summary>
    public async Task<string> RecreateShareAsync(string server, string shareKey, CancellationToken cancellationToken = default)
    {
        var gate = _createLocks.GetOrAdd(server + "\n" + shareKey, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var intent = await Outbox.GetShareIntentAsync(server, shareKey).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"No share with key '{shareKey}' was created from this outbox.");
            if (intent.SturdyRef is { } old)
            {
                LiveRefs.Forget(SturdyRef.Parse(old));
            }

            await Outbox.SetShareIntentResultAsync(server, shareKey, null, null, ShareIntentState.Pending).ConfigureAwait(false);
            return (await CreateShareAsync(server, shareKey, intent.Title, cancellationToken).ConfigureAwait(false)).SturdyRef;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Best effort: revokes the owner capability (and so every capability of the share) and marks the intent aborted. Errors go
    /// to <see cref="ShareRpcClientOptions.ErrorCallback"/>, never to the caller.
    /// </summary>
    public async Task AbortAsync(string server, string shareKey, CancellationToken cancellationToken = default)
    {
        try
        {
            var intent = await Outbox.GetShareIntentAsync(server, shareKey).ConfigureAwait(false);
            if (intent is null)
            {
                return;
            }

            await Outbox.SetShareIntentResultAsync(server, shareKey, intent.ShareId, intent.SturdyRef, ShareIntentState.Aborted).ConfigureAwait(false);
            if (intent.SturdyRef is { } sturdy)
            {
                // The owner revokes its own capability: that takes every delegated one with it
                // (revoking "all" would keep the owner's).
                await RevokeAsync(sturdy, SturdyRef.Parse(sturdy).CapabilityId, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Options.ErrorCallback?.Invoke(ex);
        }
    }

    /// <summary>
    /// Sturdy ref → a fresh live ref with the current epoch, cursor and rights. (Other calls reuse
    /// the cached live ref until it is stale or near expiry.)
    /// </summary>
    public Task<RedeemShareResponse> RedeemAsync(string sturdyRef, CancellationToken cancellationToken = default) =>
        LiveRefs.GetAsync(SturdyRef.Parse(sturdyRef), forceRedeem: true, cancellationToken);

    /// <summary>
    /// The durable writer for the sturdy ref's share (one per share per client). Its ops go to
    /// the outbox first and are streamed by a background sender.
    /// </summary>
    public ShareWriter OpenWriter(string sturdyRef)
    {
        var parsed = SturdyRef.Parse(sturdyRef);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return _writers.GetOrAdd(parsed.ShareId, _ => new Lazy<ShareWriter>(() =>
        {
            Outbox.AcquireWriterLock();
            return new ShareWriter(this, parsed);
        })).Value;
    }

    /// <summary>
    /// Recovery on start: opens a writer for every producer in the outbox, so every unacked batch
    /// and pending op resumes, in order. Returns the writers.
    /// </summary>
    public async Task<IReadOnlyList<ShareWriter>> ResumeAllAsync()
    {
        var producers = await Outbox.GetProducersAsync().ConfigureAwait(false);
        return producers.Select(p => OpenWriter(p.SturdyRef)).ToArray();
    }

    /// <summary>
    /// Committed ops from <paramref name="fromCursor"/> on (a snapshot first if asked), then live
    /// ops. Resumes after any disconnect from the last cursor it yielded, redeeming again when
    /// the epoch moved; ends with an exception only when retrying cannot help (revoked, ...).
    /// </summary>
    public IAsyncEnumerable<SubscribeResponse> SubscribeAsync(string sturdyRef, ulong fromCursor = 0, bool includeSnapshot = false, CancellationToken cancellationToken = default) =>
        new ShareSubscription(this, SturdyRef.Parse(sturdyRef), fromCursor, includeSnapshot).ReadAsync(cancellationToken);

    public Task<GetSnapshotResponse> GetSnapshotAsync(string sturdyRef, string collection = "", int pageSize = 0, string pageToken = "", CancellationToken cancellationToken = default) =>
        CallAuthorizedAsync(SturdyRef.Parse(sturdyRef), static (stub, r, o) => stub.GetSnapshotAsync(r, o), new GetSnapshotRequest { Collection = collection, PageSize = pageSize, PageToken = pageToken }, cancellationToken);

    /// <summary>Every document, following page tokens.</summary>
    public async IAsyncEnumerable<Document> GetAllDocumentsAsync(string sturdyRef, string collection = "", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var token = "";
        do
        {
            var page = await GetSnapshotAsync(sturdyRef, collection, 0, token, cancellationToken).ConfigureAwait(false);
            foreach (var d in page.Documents)
            {
                yield return d;
            }

            token = page.NextPageToken;
        }
        while (!string.IsNullOrEmpty(token));
    }

    /// <summary>Mints a child sturdy ref with a subset of this one's rights (idempotent on a secret made here).</summary>
    public Task<DelegateCapabilityResponse> DelegateAsync(string sturdyRef, IEnumerable<Right> rights, DateTimeOffset? expiresAt = null, string note = "", CancellationToken cancellationToken = default)
    {
        var request = new DelegateCapabilityRequest { Note = note, Secret = Google.Protobuf.ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)) };
        request.Rights.AddRange(rights);
        if (expiresAt is { } e)
        {
            request.ExpiresAt = Timestamp.FromDateTimeOffset(e);
        }

        return CallAuthorizedAsync(SturdyRef.Parse(sturdyRef), static (stub, r, o) => stub.DelegateCapabilityAsync(r, o), request, cancellationToken);
    }

    /// <summary>Revokes one capability and all it delegated; returns the new epoch.</summary>
    public Task<RevokeCapabilityResponse> RevokeAsync(string sturdyRef, string capabilityId, CancellationToken cancellationToken = default) =>
        CallAuthorizedAsync(SturdyRef.Parse(sturdyRef), s_revoke, new RevokeCapabilityRequest { CapabilityId = capabilityId }, cancellationToken);

    /// <summary>Revokes every capability this one delegated (the server keeps the caller's own); returns the new epoch.</summary>
    public Task<RevokeCapabilityResponse> RevokeAllAsync(string sturdyRef, CancellationToken cancellationToken = default) =>
        CallAuthorizedAsync(SturdyRef.Parse(sturdyRef), s_revoke, new RevokeCapabilityRequest { All = true }, cancellationToken);

    private static readonly Func<ShareRpcGrpc.ShareRpcClient, RevokeCapabilityRequest, CallOptions, AsyncUnaryCall<RevokeCapabilityResponse>> s_revoke =
        static (stub, r, o) => stub.RevokeCapabilityAsync(r, o);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var w in _writers.Values)
        {
            if (w.IsValueCreated)
            {
                await w.Value.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (_outbox.IsValueCreated)
        {
            await _outbox.Value.DisposeAsync().ConfigureAwait(false);
        }

        _channels.Dispose();
        Metrics.Dispose();
    }

    /// <summary>The call invoker of the channel to <paramref name="address"/> (one channel per server).</summary>
    internal CallInvoker InvokerFor(string address) => _channels.Invoker(address);

    /// <summary>The generated client on the channel to <paramref name="address"/>.</summary>
    internal ShareRpcGrpc.ShareRpcClient Stub(string address) => ShareRpcMethods.Stub(InvokerFor(address));

    internal CallOptions UnaryOptions(string? bearer, CancellationToken cancellationToken) =>
        new(Bearer(bearer), Options.TimeProvider.GetUtcNow().UtcDateTime + Options.UnaryTimeout, cancellationToken);

    internal static Metadata? Bearer(string? token) =>
        string.IsNullOrEmpty(token) ? null : new Metadata { { "authorization", "Bearer " + token } };

    private const int MaxStaleRedeems = 64;

    /// <summary>
    /// A unary call under the live ref; a transparent redeem when the epoch moved or the live ref expired.
    /// While revokes keep moving the epoch (each redeem sees a newer one) it redeems again: found by the chaos
    /// harness, where a single redeem lost to the next of several concurrent revokes.
    /// </summary>
    internal async Task<TResponse> CallAuthorizedAsync<TRequest, TResponse>(SturdyRef sturdyRef,
        Func<ShareRpcGrpc.ShareRpcClient, TRequest, CallOptions, AsyncUnaryCall<TResponse>> call, TRequest request, CancellationToken cancellationToken)
    {
        ulong lastEpoch = 0;
        var stalled = 0;
        string? redeemedFor = null;
        for (var attempt = 0; ; attempt++)
        {
            var live = await LiveRefs.GetAsync(sturdyRef, forceRedeem: attempt > 0, cancellationToken).ConfigureAwait(false);
            if (redeemedFor is not null)
            {
                ClientLog.Redeemed(Logger, sturdyRef.ShareId, redeemedFor, ClientLog.Redacted(sturdyRef), live.Epoch);
            }

            var progressed = live.Epoch > lastEpoch;
            lastEpoch = Math.Max(lastEpoch, live.Epoch);
            try
            {
                return await call(Stub(sturdyRef.Address), request, UnaryOptions(live.LiveRef, cancellationToken)).ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException ex)
            {
                var typed = ShareRpcCallException.From(ex);
                if (typed.IsRedeemable && (attempt == 0
                    || (typed.Reason == Reasons.EpochStale && attempt < MaxStaleRedeems && (progressed || stalled++ < 3))))
                {
                    redeemedFor = $"{typed.StatusCode} {typed.Reason}";
                    continue;
                }

                throw typed;
            }
        }
    }
}
