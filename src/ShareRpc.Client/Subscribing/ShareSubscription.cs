using System.Runtime.CompilerServices;
using Grpc.Core;
using ShareRpc.Client.Transport;
using Sharerpc.V1;

namespace ShareRpc.Client.Subscribing;

/// <summary>
/// A Subscribe stream that survives disconnects: it resumes from the cursor after the last op it
/// yielded (or restarts a snapshot that was cut off), redeeming again when the epoch moved.
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
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            AsyncServerStreamingCall<SubscribeResponse>? call = null;
            Exception? failure = null;
            try
            {
                var live = await _client.LiveRefs.GetAsync(_sturdyRef, redeem, cancellationToken).ConfigureAwait(false);
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
            await backoff.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
