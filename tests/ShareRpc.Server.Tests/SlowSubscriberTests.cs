using Grpc.Core;
using Google.Protobuf;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;
using ShareRpc.TestSupport;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>Tests that measure this process's managed heap run alone: nothing else allocates meanwhile.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryMeasuringCollection
{
    public const string Name = "memory measuring";
}

/// <summary>
/// Issue 13, item 1: slow subscribers exhaust memory. Catch-up read up to 1,000 log entries per
/// chunk and <c>include_snapshot</c> built the whole snapshot before sending its first chunk, so
/// each subscriber that stops reading held a whole log range or snapshot. Now a subscriber holds
/// one chunk of at most MaxCatchUpChunkBytes / MaxSnapshotPageBytes (or one entry), and the chunks
/// of all subscribers together stay within the server-wide MaxBufferedReadBytes.
/// </summary>
[Collection(MemoryMeasuringCollection.Name)]
public sealed class SlowSubscriberTests : IAsyncLifetime
{
    private const int Subscribers = 8;
    private const int Entries = 40;
    private const int ValueBytes = 256 * 1024; // 40 × 256 KiB = 10 MiB of log and of documents

    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture(o => o.FsyncEveryCommit = false);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private async Task<LiveRefClaims> ShareOfLargeValuesAsync()
    {
        var (owner, _) = await _f.NewShareAsync();
        var value = new byte[ValueBytes];
        for (ulong i = 1; i <= Entries; i++)
        {
            var op = Put(i, "docs", "k" + i.ToString("D3"), "");
            op.Put.Value = ByteString.CopyFrom(value);
            await _f.AppendAsync(owner, "p", op);
        }
        return owner;
    }

    [Theory]
    [InlineData(false)] // catch-up from cursor 1
    [InlineData(true)]  // include_snapshot
    public async Task Subscribers_that_stop_reading_each_hold_one_byte_bounded_chunk(bool includeSnapshot)
    {
        var owner = await ShareOfLargeValuesAsync();
        var limits = _f.Options.Limits;
        var chunk = includeSnapshot ? limits.MaxSnapshotPageBytes : limits.MaxCatchUpChunkBytes;
        var before = GC.GetTotalMemory(forceFullCollection: true);

        // Each takes its first event and then stops, as a peer whose HTTP/2 window is full: the
        // server's writer waits on the event it holds, and its reader on the next.
        var streams = new List<IAsyncEnumerator<SubscribeResponse>>();
        try
        {
            for (var i = 0; i < Subscribers; i++)
            {
                var events = _f.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 1, IncludeSnapshot = includeSnapshot }).GetAsyncEnumerator();
                streams.Add(events);
                Assert.True(await events.MoveNextAsync());
                var first = events.Current;
                Assert.True(includeSnapshot ? first.Snapshot.Documents.Count is > 0 and < Entries : first.Op.Cursor == 1);
            }

            var held = GC.GetTotalMemory(forceFullCollection: true) - before;
            var perStream = Math.Max(chunk, _f.Engine.MaxEntryBytes);
            // Measured: the managed heap grew by about one chunk per subscriber, not by the 10 MiB of
            // values each would have held before (≥ 80 MiB in all).
            Assert.True(held < Subscribers * (chunk + 2L * ValueBytes), $"{held / 1024} KiB held by {Subscribers} stalled subscribers");
            Assert.InRange(_f.Engine.ReadBudget.InUse, 1, Subscribers * perStream);
            Assert.True(_f.Engine.ReadBudget.Peak <= Subscribers * perStream);
        }
        finally
        {
            foreach (var s in streams) await s.DisposeAsync();
        }
        Assert.Equal(0, _f.Engine.ReadBudget.InUse); // every chunk's bytes came back
    }

    /// <summary>
    /// The same over a real HTTP/2 connection: what matters is what the server holds in all, Kestrel's
    /// response buffers included. A write that is not flushed does not wait for flow control, and the
    /// handler coalesced up to 64 events per flush: each reader that never read had the log, 64 events
    /// at a time, buffered in Kestrel (eight readers of a 24 MiB log: 192 MiB).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Over_http2_readers_that_never_read_hold_a_bounded_number_of_bytes(bool includeSnapshot)
    {
        await using var s = await LoopbackServer.StartAsync(o => o.FsyncEveryCommit = false);
        var (_, live) = await s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        await OneOpBatches.WriteAsync(s, auth, 24, "big", "d", 1024 * 1024);
        var before = GC.GetTotalMemory(forceFullCollection: true);

        var opened = new List<IDisposable>();
        try
        {
            for (var i = 0; i < Subscribers; i++)
            {
                var channel = Channel(s.Address.ToString()); // a connection each: one peer each
                var call = Stub(channel).Subscribe(new SubscribeRequest { FromCursor = 1, IncludeSnapshot = includeSnapshot }, auth);
                opened.Add(call);
                opened.Add(channel);
                await call.ResponseHeadersAsync; // the server is sending
            }
            // Every reader's server side is parked: its read budget taken (a chunk) and its writer waiting on the
            // peer. (Before, this never came: every event was written into Kestrel's buffers, the budget given back.)
            await Wait.UntilAsync(() => s.Engine.ReadBudget.InUse > 0 && s.Engine.OpenStreams(live.CapabilityId) == Subscribers,
                TimeSpan.FromSeconds(30), "the readers' server sides parked on a chunk each");
            var held = GC.GetTotalMemory(forceFullCollection: true) - before; // Kestrel's buffers are pinned managed memory: counted
            Assert.True(held < 64L * 1024 * 1024, $"{held / (1024 * 1024)} MiB held by {Subscribers} readers that never read");
        }
        finally
        {
            foreach (var o in opened) o.Dispose();
        }
    }

    [Fact]
    public async Task The_chunks_of_all_subscribers_stay_within_MaxBufferedReadBytes_the_next_reader_waits()
    {
        await _f.DisposeAsync();
        _f = new EngineFixture(o =>
        {
            o.FsyncEveryCommit = false;
            o.MaxBufferedReadBytes = 2L * 1024 * 1024; // room for a chunk and a reservation, not for a third reader
        });
        var owner = await ShareOfLargeValuesAsync();
        var reserve = Math.Max(_f.Options.Limits.MaxCatchUpChunkBytes, _f.Engine.MaxEntryBytes);

        using var stopA = new CancellationTokenSource();
        var a = _f.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 1 }).GetAsyncEnumerator(stopA.Token);
        var b = _f.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 1 }).GetAsyncEnumerator();
        var c = _f.Engine.SubscribeAsync(owner, new SubscribeRequest { FromCursor = 1 }).GetAsyncEnumerator();
        Task<bool>? aNext = null;
        try
        {
            Assert.True(await a.MoveNextAsync());
            Assert.True(await b.MoveNextAsync());
            var third = c.MoveNextAsync().AsTask();
            await Wait.UntilAsync(() => _f.Engine.ReadBudget.Waiting == 1, TimeSpan.FromSeconds(30), "_f.Engine.ReadBudget.Waiting == 1");
            Assert.False(third.IsCompleted); // no room: it waits instead of reading
            Assert.True(_f.Engine.ReadBudget.InUse <= 2 * reserve);

            // a reads on past its chunk: it gives its chunk back before it reserves the next, so c gets in.
            while (!third.IsCompleted)
            {
                aNext = a.MoveNextAsync().AsTask();
                if (await Task.WhenAny(aNext, third).WaitAsync(TimeSpan.FromSeconds(30)) == aNext) Assert.True(await aNext);
            }
            Assert.True(await third);
            Assert.True(_f.Engine.ReadBudget.Peak <= _f.Options.MaxBufferedReadBytes);
        }
        finally
        {
            await stopA.CancelAsync(); // a may be waiting for room now
            if (aNext is not null)
            {
                try { await aNext; }
                catch (OperationCanceledException) { /* it was waiting for room */ }
            }
            await a.DisposeAsync();
            await b.DisposeAsync();
            await c.DisposeAsync();
        }
    }
}

/// <summary>
/// A subscriber whose peer stops taking events (its HTTP/2 window stays full) holds its chunk only
/// for SubscriberStallTimeout: then the stream is reset and the chunk's read budget comes back, so
/// stalled readers cannot keep the server-wide MaxBufferedReadBytes from others for ever.
/// </summary>
public sealed class SubscriberStallTests
{
    [Fact]
    public async Task A_peer_that_takes_no_event_for_SubscriberStallTimeout_is_cut_off_and_its_chunk_freed()
    {
        await using var s = await LoopbackServer.StartAsync(o =>
        {
            o.FsyncEveryCommit = false;
            o.SubscriberStallTimeout = TimeSpan.FromSeconds(1);
        });
        var (_, live) = await s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        await OneOpBatches.WriteAsync(s, auth, 8, "d", "k", 256 * 1024);

        // The stream is opened and never read: the client's 64 KiB stream window fills with the first event.
        using var stalled = Stub(s.Channel).Subscribe(new SubscribeRequest { FromCursor = 1 }, auth);
        await Wait.UntilAsync(() => s.Engine.StalledSubscribers == 1, TimeSpan.FromSeconds(30), "s.Engine.StalledSubscribers == 1");
        await Wait.UntilAsync(() => s.Engine.ReadBudget.InUse == 0 && s.Engine.OpenStreams(live.CapabilityId) == 0, TimeSpan.FromSeconds(30), "s.Engine.ReadBudget.InUse == 0 && s.Engine.OpenStreams(live.CapabilityId) == 0");

        // Others are served as before.
        using var reader = Stub(s.Channel).Subscribe(new SubscribeRequest { FromCursor = 8 }, auth);
        Assert.True(await reader.ResponseStream.MoveNext());
        Assert.Equal(8UL, reader.ResponseStream.Current.Op.Cursor);
    }
}

/// <summary>Big documents written straight on the wire, one op per batch, for the read-side tests.</summary>
internal static class OneOpBatches
{
    /// <summary>Puts <paramref name="count"/> documents of <paramref name="valueBytes"/> each, one op per batch, and waits for every ack.</summary>
    public static async Task WriteAsync(LoopbackServer s, CallOptions auth, ulong count, string collection, string keyPrefix, int valueBytes)
    {
        using var call = Stub(s.Channel).AppendOps(auth);
        for (ulong i = 1; i <= count; i++)
        {
            var op = Put(i, collection, keyPrefix + i, "");
            op.Put.Value = ByteString.CopyFrom(new byte[valueBytes]);
            await call.RequestStream.WriteAsync(Batch("p", op));
        }
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext()) { }
    }
}
