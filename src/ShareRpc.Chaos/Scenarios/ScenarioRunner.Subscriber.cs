// ScenarioRunner: the subscriber actor (follows a share across faults and revokes).
using System.Diagnostics;
using System.Globalization;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.History;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.Chaos.Scenarios;

public static partial class ScenarioRunner
{
    /// <summary>One subscriber: follows the share from cursor 0 (or from a snapshot), across faults and revokes.</summary>
    internal sealed class Subscriber(string name, string shareId, ShareRpcClient client, string sturdyRef, bool snapshot, OpHistory history)
    {
        private readonly List<(ulong, string)> _ops = new();
        private readonly List<ObservedDocument> _snapshot = new();
        private ulong? _snapshotCursor;
        private bool _inSnapshot;
        private long _last;
        private Task _task = Task.CompletedTask;
        private readonly SemaphoreSlim _progress = new(0, int.MaxValue);
        private string? _endedWith;

        public string ShareId => shareId;

        public string Name => name;

        public void Start(Task startWhen, CancellationToken ct) => _task = Task.Run(async () =>
        {
            await startWhen.ConfigureAwait(false);
            try
            {
                await foreach (var e in client.SubscribeAsync(sturdyRef, 0, snapshot, ct).ConfigureAwait(false))
                {
                    lock (_ops)
                    {
                        switch (e.EventCase)
                        {
                            case SubscribeResponse.EventOneofCase.Snapshot:
                                if (!_inSnapshot)
                                {
                                    _snapshot.Clear(); // a snapshot cut off is restarted whole
                                    _inSnapshot = true;
                                }

                                _snapshot.AddRange(e.Snapshot.Documents.Select(ToObserved));
                                if (e.Snapshot.LastChunk)
                                {
                                    _inSnapshot = false;
                                    _snapshotCursor = e.Snapshot.Cursor;
                                    Interlocked.Exchange(ref _last, (long)e.Snapshot.Cursor);
                                    history.Add(name, EventType.Info, "snapshot", null, $"cursor {e.Snapshot.Cursor}, {_snapshot.Count} documents");
                                }

                                break;
                            case SubscribeResponse.EventOneofCase.Op:
                                _ops.Add((e.Op.Cursor, e.Op.Op.OpId));
                                Interlocked.Exchange(ref _last, (long)e.Op.Cursor);
                                break;
                        }
                    }

                    _progress.Release();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                _endedWith = ex.Message;
                history.Add(name, EventType.Fail, "subscribe", null, ex.Message);
            }
            finally
            {
                _progress.Release(); // the stream ended: wake WaitForAsync
            }
        }, CancellationToken.None);

        /// <summary>
        /// Waits until the subscriber has reached <paramref name="head"/> — or, for a revoked reader
        /// (<paramref name="fenced"/>), until its stream has ended: the server ends it after RevokeCapability has
        /// returned (docs/server.md, fence on streams), so the end may still be on its way when the reader already
        /// holds every op up to the fence. Either way at most <paramref name="timeout"/>.
        /// </summary>
        public async Task WaitForAsync(ulong head, bool fenced, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            TimeSpan? caughtUp = null;
            while (clock.Elapsed < timeout && !_task.IsCompleted)
            {
                if ((ulong)Interlocked.Read(ref _last) >= head)
                {
                    caughtUp ??= clock.Elapsed;
                    if (!fenced)
                    {
                        return;
                    }
                }

                await _progress.WaitAsync(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
            }

            if (fenced && caughtUp is { } at && _task.IsCompleted)
            {
                var after = clock.Elapsed - at;
                history.Add(name, EventType.Info, "fence end", null, string.Create(CultureInfo.InvariantCulture, $"the stream ended {after.TotalMilliseconds:0.0} ms after the reader held every op up to the head"));
            }
        }

        public async Task<ObservedSubscriber> StopAsync(ulong head, ulong? fencedAfter)
        {
            await _task.ConfigureAwait(false);
            lock (_ops)
            {
                var caughtUp = (ulong)Interlocked.Read(ref _last) >= head && (!snapshot || _snapshotCursor is not null);
                return new ObservedSubscriber(name, shareId, _snapshotCursor, snapshot ? [.. _snapshot] : null, [.. _ops], caughtUp, fencedAfter, _endedWith);
            }
        }
    }
}
