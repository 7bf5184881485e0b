using System.Runtime.CompilerServices;
using Grpc.Core;
using ShareRpc.Client.Diagnostics;
using ShareRpc.Client.Transport;
using Sharerpc.V1;

namespace ShareRpc.Client.Subscribing;

/// <summary>
/// A Subscribe stream that survives disconnects: it resumes from the cursor after the last op it
/// yielded (or restarts a snapshot that was cut off), redeeming again when the epoch moved. With
/// <see cref="ShareRpcClientOptions.SubscribeGiveUpAfter"/> set, an outage that long (no event from
/// the server, only failures) ends it with the last error instead of retrying forever.
/// </summary>
internal sealed class ShareSubscription
{
    private readonly ShareRpcClient _client;
    private readonly SturdyRef _sturdyRef;
    private ulong _next;
    private bool _wantSnapshot;

    public ShareSubscription(ShareRpcClient client, SturdyRef sturdyRef, ulong fromCursor, bool includeSnapshot)
    {
        _client = client;
        _sturdyRef = sturdyRef;
        _next = fromCursor;
        _wantSnapshot = includeSnapshot;
    }

    public async IAsyncEnumerable<SubscribeResponse> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var backoff = new Backoff(_client.Options);
        var redeem = false;
        string? redeemedFor = null;
        DateTimeOffset? outageSince = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            AsyncServerStreamingCall<SubscribeResponse>? call = null;
            Exception? failure = null;
            try
            {
                var live = await _client.LiveRefs.GetAsync(_sturdyRef, redeem, cancellationToken).ConfigureAwait(false);
                if (redeem)
                {
                    ClientLog.Redeemed(_client.Logger, _sturdyRef.ShareId, redeemedFor ?? "UNAUTHENTICATED", ClientLog.Redacted(_sturdyRef), live.Epoch);
                }

                redeem = false;
                call = _client.Stub(_sturdyRef.Address).Subscribe(
                    new SubscribeRequest { FromCursor = _next, IncludeSnapshot = _wantSnapshot },
                    new CallOptions(ShareRpcClient.Bearer(live.LiveRef), null, cancellationToken));
            }
            catch (Exception ex)
            {
                failure = ex;
            }

            if (call is not null)
            {
                using (call)
                {
                    while (true)
                    {
                        SubscribeResponse item;
                        try
                        {
                            if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
                            {
                                break;
                            }

                            item = call.ResponseStream.Current;
                        }
                        catch (Exception ex)
                        {
                            failure = ex;
                            break;
                        }

                        switch (item.EventCase)
                        {
                            case SubscribeResponse.EventOneofCase.Snapshot when item.Snapshot.LastChunk:
                                _wantSnapshot = false;
                                _next = item.Snapshot.Cursor + 1;
                                break;
                            case SubscribeResponse.EventOneofCase.Op:
                                if (item.Op.Cursor < _next && !_wantSnapshot)
                                {
                                    continue; // already yielded before a reconnect
                                }

                                _next = item.Op.Cursor + 1;
                                break;
                        }

                        backoff.Reset();
                        outageSince = null;
                        yield return item;
                    }
                }
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (failure is RpcException rpc)
            {
                var typed = ShareRpcCallException.From(rpc);
                if (typed.IsRedeemable)
                {
                    redeem = true;
                    redeemedFor = $"{typed.StatusCode} {typed.Reason}";
                    continue;
                }

                if (typed.IsPermanent)
                {
                    throw typed;
                }
            }
            else if (failure is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw failure;
            }

            // The stream ended or broke (server restart, drain, network): resume after a jittered pause.
            var now = _client.Options.TimeProvider.GetUtcNow();
            outageSince ??= now;
            if (_client.Options.SubscribeGiveUpAfter != Timeout.InfiniteTimeSpan && now - outageSince >= _client.Options.SubscribeGiveUpAfter)
            {
                var gaveUp = GiveUp(failure, now - outageSince.Value);
                ClientLog.SubscriptionGaveUp(_client.Logger, _sturdyRef.Address, _sturdyRef.ShareId, now - outageSince.Value, gaveUp.Status.Detail);
                throw gaveUp;
            }

            var wait = backoff.WaitAsync(cancellationToken, out var delay);
            _client.Metrics.Reconnect("subscribe");
            ClientLog.SubscriptionReconnecting(_client.Logger, _sturdyRef.Address, _sturdyRef.ShareId, Describe(failure), _next, delay);
            await wait.ConfigureAwait(false);
        }
    }

    private static string Describe(Exception? failure) => failure switch
    {
        null => "the stream ended",
        RpcException rpc => ShareRpcCallException.From(rpc).Message,
        _ => failure.GetType().Name + ": " + failure.Message,
    };

    /// <summary>The outage as one error: the last status seen (UNAVAILABLE when none), naming the server and how long it lasted.</summary>
    private ShareRpcCallException GiveUp(Exception? failure, TimeSpan outage)
    {
        var last = failure switch
        {
            RpcException rpc => ShareRpcCallException.From(rpc),
            null => null,
            _ => ShareRpcCallException.Local(StatusCode.Unavailable, failure.Message, failure),
        };
        var detail = $"gave up on {_sturdyRef.Address} after {outage.TotalSeconds:0.#} s without an answer (last error: {last?.Status.Detail ?? "the stream ended"})";
        return ShareRpcCallException.Local(last?.StatusCode ?? StatusCode.Unavailable, detail, failure);
    }
}
