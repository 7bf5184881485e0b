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
            // The events are read one ahead of the flush; `stop` ends a read that is still running when the
            // flush fails (see below).
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var events = engine.SubscribeAsync(claims, request, stop.Token).GetAsyncEnumerator(stop.Token);
            await using (events.ConfigureAwait(false))
            {
                var buffered = 0;
                while (true)
                {
                    var next = events.MoveNextAsync();
                    if (buffered > 0 && (!next.IsCompleted || buffered >= MaxEventsPerFlush))
                    {
                        try
                        {
                            await responses.FlushAsync(ct).ConfigureAwait(false);
                        }
                        catch
                        {
                            // The client is gone. Let the running read end before the enumerator is disposed:
                            // disposing an async iterator while a MoveNextAsync is pending throws
                            // NotSupportedException (hiding this error) and leaves the iterator running on its
                            // own — a storage read after the request ended, and its finally (unwatch, the
                            // subscriber count) never run.
                            await stop.CancelAsync().ConfigureAwait(false);
                            try
                            {
                                await next.ConfigureAwait(false);
                            }
                            catch (Exception)
                            {
                                // Cancelled, or its own failure: the flush's error is the one to report.
                            }
                            throw;
                        }
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
