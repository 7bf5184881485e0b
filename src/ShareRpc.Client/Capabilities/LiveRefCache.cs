using System.Collections.Concurrent;
using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Client.Capabilities;

/// <summary>
/// Redeems sturdy refs into live refs and keeps them until they are near expiry or the server
/// says they are stale (a revoke bumped the epoch). Concurrent callers share one redeem.
/// </summary>
internal sealed class LiveRefCache
{
    private readonly ShareRpcClient _client;
    private readonly ConcurrentDictionary<string, Task<RedeemShareResponse>> _live = new(StringComparer.Ordinal);

    public LiveRefCache(ShareRpcClient client) => _client = client;

    public async Task<RedeemShareResponse> GetAsync(SturdyRef sturdyRef, bool forceRedeem, CancellationToken cancellationToken)
    {
        var key = sturdyRef.ToString();
        while (true)
        {
            var task = _live.GetOrAdd(key, _ => RedeemAsync(sturdyRef, cancellationToken));
            RedeemShareResponse live;
            try
            {
                live = await task.ConfigureAwait(false);
            }
            catch
            {
                _live.TryRemove(new KeyValuePair<string, Task<RedeemShareResponse>>(key, task));
                throw;
            }

            var fresh = live.LiveRefExpiresAt is null
                || live.LiveRefExpiresAt.ToDateTimeOffset() - _client.Options.TimeProvider.GetUtcNow() > _client.Options.LiveRefRefreshMargin;
            if (!forceRedeem && fresh)
            {
                return live;
            }

            // Replace only the entry we looked at: a concurrent caller may have refreshed it already.
            forceRedeem = false;
            var replacement = RedeemAsync(sturdyRef, cancellationToken);
            if (_live.TryUpdate(key, replacement, task))
            {
                return await replacement.ConfigureAwait(false);
            }
        }
    }

    public void Forget(SturdyRef sturdyRef) => _live.TryRemove(sturdyRef.ToString(), out _);

    private async Task<RedeemShareResponse> RedeemAsync(SturdyRef sturdyRef, CancellationToken cancellationToken)
    {
        try
        {
            return await _client.Stub(sturdyRef.Address).RedeemShareAsync(
                new RedeemShareRequest { SturdyRef = sturdyRef.ToString() },
                _client.UnaryOptions(null, cancellationToken)).ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            throw ShareRpcCallException.From(ex);
        }
    }
}
