using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>
/// Subscribe (READ): snapshot chunks if asked, the log from from_cursor, then live ops and
/// heartbeats. Events that are ready at once (catching up) share a flush, at most
/// <see cref="MaxEventsPerFlush"/> at a time; the stream flushes before it waits.
/// </summary>
internal sealed class SubscribeHandler(ShareEngine engine)
{
    public const int MaxEventsPerFlush = 64;

    public Task Handle(SubscribeRequest request, IServerStreamWriter<SubscribeResponse> responses, ServerCallContext context) =>
        CallSupport.Guard(async () =>
        {
            var claims = CallSupport.Authenticate(engine, context);
            using var tracked = ShareEngine.TrackStream("Subscribe");
            var ct = context.CancellationToken;
            var events = engine.SubscribeAsync(claims, request, ct).GetAsyncEnumerator(ct);
            await using (events.ConfigureAwait(false))
            {
                var buffered = 0;
                while (true)
                {
                    var next = events.MoveNextAsync();
                    if (buffered > 0 && (!next.IsCompleted || buffered >= MaxEventsPerFlush))
                    {
                        await responses.FlushAsync(ct).ConfigureAwait(false);
                        buffered = 0;
                    }
                    if (!await next.ConfigureAwait(false)) break;
                    responses.WriteBuffered(events.Current);
                    buffered++;
                }
                if (buffered > 0) await responses.FlushAsync(ct).ConfigureAwait(false);
            }
        });
}
