using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using ShareRpc.Server.Apply;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Diagnostics;
using ShareRpc.Server.Storage;
using ShareRpc.Server.Subscribe;
using Sharerpc.V1;

namespace ShareRpc.Server;

/// <summary>
/// GetSnapshot and Subscribe. Every page and chunk is bounded in bytes as well as in entries
/// (docs/design.md, "Limits"), read only when the server-wide read budget
/// (<see cref="ShareRpcServerOptions.MaxBufferedReadBytes"/>) has room for it, and held only until
/// it is handed to gRPC: a subscriber that never reads holds one chunk, never the log or the
/// whole snapshot.
/// </summary>
internal sealed partial class ShareEngine
{
    public const int DefaultSnapshotPageSize = 100;

    /// <summary>The most a single log entry or document can hold under the current limits (its value and ids, bytes).</summary>
    internal long MaxEntryBytes =>
        (long)Limits.MaxValueBytes + Limits.MaxKeyLength + Limits.MaxCollectionLength + Limits.MaxContentTypeLength
        + (long)Limits.MaxIdLength * (2 + Limits.MaxDependsOnPerOp);

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

    /// <summary>
    /// Waits until the read budget has room for a chunk of up to <paramref name="chunkBytes"/> (or one
    /// entry, if larger) and takes it; <see cref="ReadHold.Keep"/> then gives back what the read did not use.
    /// </summary>
    private async Task<ReadHold> ReserveReadAsync(long chunkBytes, CancellationToken ct)
    {
        var reserved = Math.Max(chunkBytes, MaxEntryBytes);
        await ReadBudget.AcquireAsync(reserved, ct).ConfigureAwait(false);
        return new ReadHold(ReadBudget, reserved);
    }

    /// <summary>Bytes taken from the read budget for one chunk, given back once (dispose).</summary>
    private sealed class ReadHold(ByteBudget budget, long reserved) : IDisposable
    {
        private long _held = reserved;

        /// <summary>Keeps what the chunk really holds. Entries written under larger, older limits may exceed the reservation: they are counted, not refused.</summary>
        public void Keep(long bytes)
        {
            if (bytes < _held) budget.Release(_held - bytes);
            else if (bytes > _held) budget.ForceAcquire(bytes - _held);
            _held = bytes;
        }

        public void Dispose()
        {
            budget.Release(Interlocked.Exchange(ref _held, 0));
        }
    }

    public async Task<GetSnapshotResponse> GetSnapshotAsync(LiveRefClaims claims, GetSnapshotRequest req, CancellationToken ct = default)
    {
        if (req.PageSize < 0) throw ShareRpcException.InvalidArgument("page_size", "must be >= 0");
        BatchValidator.MaxBytes(req.Collection, "collection", nameof(Limits.MaxCollectionLength), Limits.MaxCollectionLength);
        var size = Math.Min(req.PageSize == 0 ? DefaultSnapshotPageSize : req.PageSize, Limits.MaxSnapshotPageSize);
        (string, string)? after = null;
        if (req.PageToken.Length > 0)
        {
            after = DecodePageToken(req.PageToken);
            if (req.Collection.Length > 0 && after.Value.Item1 != req.Collection)
                throw ShareRpcException.InvalidArgument("page_token", "belongs to another collection");
        }
        var collection = req.Collection.Length == 0 ? null : req.Collection;
        // Held until the page is handed to gRPC (the handler returns it and it is serialized at once).
        using var hold = await ReserveReadAsync(Limits.MaxSnapshotPageBytes, ct).ConfigureAwait(false);
        var (reader, share) = await OpenAuthorizedAsync(claims, Rights.Read, ct).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            var docs = await reader.ReadDocumentsAsync(share.RowId, collection, after, size, Limits.MaxSnapshotPageBytes, ct).ConfigureAwait(false);
            hold.Keep(docs.Sum(StoredBytes.Of));
            var response = new GetSnapshotResponse { Cursor = share.Cursor };
            foreach (var d in docs) response.Documents.Add(ToDocument(d));
            if (docs.Count > 0 && await reader.HasDocumentsAfterAsync(share.RowId, collection, (docs[^1].Collection, docs[^1].Key), ct).ConfigureAwait(false))
            {
                var last = docs[^1];
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

    /// <summary>The wire document; its value wraps the read buffer (never changed after the read) instead of copying it.</summary>
    private static Document ToDocument(DocumentRecord d) => new()
    {
        Collection = d.Collection,
        Key = d.Key,
        Value = UnsafeByteOperations.UnsafeWrap(d.Value),
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
            var next = Math.Max(req.FromCursor, 1);
            await using (reader.ConfigureAwait(false))
            {
                if (req.IncludeSnapshot)
                {
                    await foreach (var snap in SnapshotChunksAsync(reader, share, ct).ConfigureAwait(false))
                    {
                        await EnsureFenceAsync(claims, signal, ct).ConfigureAwait(false);
                        yield return new SubscribeResponse { Snapshot = snap };
                    }
                    next = share.Cursor + 1;
                }
            }
            await foreach (var e in LogAndHeartbeatsAsync(claims, signal, next, ct).ConfigureAwait(false)) yield return e;
        }
        finally
        {
            signal.RemoveSubscriber();
            Notifier.Unwatch(claims.ShareId, signal);
        }
    }

    /// <summary>
    /// The snapshot of one read view, one chunk at a time (never the whole of it in memory): each
    /// chunk is read when the previous one has been taken, and its budget given back before the next read.
    /// An empty share gives one empty last chunk.
    /// </summary>
    private async IAsyncEnumerable<Snapshot> SnapshotChunksAsync(IShareReader reader, ShareRecord share, [EnumeratorCancellation] CancellationToken ct)
    {
        (string Collection, string Key)? after = null;
        while (true)
        {
            var snap = new Snapshot { Cursor = share.Cursor, LastChunk = true };
            var hold = await ReserveReadAsync(Limits.MaxSnapshotPageBytes, ct).ConfigureAwait(false);
            try
            {
                var docs = await reader.ReadDocumentsAsync(share.RowId, null, after, Limits.MaxSnapshotPageSize, Limits.MaxSnapshotPageBytes, ct).ConfigureAwait(false);
                hold.Keep(docs.Sum(StoredBytes.Of));
                foreach (var d in docs) snap.Documents.Add(ToDocument(d));
                if (docs.Count > 0)
                {
                    after = (docs[^1].Collection, docs[^1].Key);
                    snap.LastChunk = !await reader.HasDocumentsAfterAsync(share.RowId, null, after.Value, ct).ConfigureAwait(false);
                }
                yield return snap;
            }
            finally
            {
                hold.Dispose();
            }
            if (snap.LastChunk) yield break;
        }
    }

    /// <summary>The log from <paramref name="next"/> in byte-bounded chunks, then live ops as they commit, heartbeats when idle.</summary>
    private async IAsyncEnumerable<SubscribeResponse> LogAndHeartbeatsAsync(LiveRefClaims claims, ShareSignal signal, ulong next, [EnumeratorCancellation] CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var wake = signal.NextChange; // taken before reading: no lost wake-up
            var hold = await ReserveReadAsync(Limits.MaxCatchUpChunkBytes, ct).ConfigureAwait(false);
            ulong head;
            try
            {
                IReadOnlyList<LogEntry> entries;
                var (r, s) = await OpenFencedAsync(claims, ct).ConfigureAwait(false);
                await using (r.ConfigureAwait(false))
                {
                    head = s.Cursor;
                    entries = next <= head ? await r.ReadLogAsync(s.RowId, next, Limits.MaxCatchUpChunkOps, Limits.MaxCatchUpChunkBytes, ct).ConfigureAwait(false) : [];
                }
                hold.Keep(entries.Sum(StoredBytes.Of));
                foreach (var e in entries)
                {
                    await EnsureFenceAsync(claims, signal, ct).ConfigureAwait(false);
                    yield return new SubscribeResponse
                    {
                        Op = new CommittedOp { Cursor = e.Cursor, Op = BatchApplier.ToOp(e), ProducerId = e.ProducerId, CommittedAt = Timestamp.FromDateTimeOffset(e.CommittedAt) },
                    };
                    next = e.Cursor + 1;
                }
            }
            finally
            {
                hold.Dispose();
            }
            if (next <= head) continue; // catching up
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
        var (reader, _) = await OpenFencedAsync(claims, ct).ConfigureAwait(false); // throws revoked / epoch-stale
        await reader.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// A read view of an open Subscribe stream: a revoke since the stream began ends it here (the
    /// fence), counted and logged as such — unlike a Subscribe refused when it starts.
    /// </summary>
    private async Task<(IShareReader Reader, ShareRecord Share)> OpenFencedAsync(LiveRefClaims claims, CancellationToken ct)
    {
        try
        {
            return await OpenAuthorizedAsync(claims, Rights.Read, ct).ConfigureAwait(false);
        }
        catch (ShareRpcException e) when (e.Reason is Reasons.Revoked or Reasons.EpochStale)
        {
            Diagnostics.Fenced(StreamKinds.Subscribe, claims, e);
            throw;
        }
    }
}
