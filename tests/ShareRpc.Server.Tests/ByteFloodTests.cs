using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;
using Xunit.Abstractions;
using ShareRpc.TestSupport;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Issue 13, item 2: the write queue was bounded by count, not bytes: 4,096 queued writes and 64
/// in-flight batches per stream, so eight streams of 3 MiB batches took a server to 6 GB. Now each
/// stream's in-flight window (MaxInFlightBytesPerStream) and the server's write queue
/// (MaxQueuedWriteBytes) are bounded in bytes, and the reader waits on them before it reads more:
/// HTTP/2 flow control stops the peers, the server does not buffer.
/// </summary>
[Collection(MemoryMeasuringCollection.Name)]
public sealed class ByteFloodTests(ITestOutputHelper output)
{
    private const int Streams = 3;
    private const int BatchesPerStream = 20;
    private const int MiB = 1024 * 1024;

    private static AppendOpsRequest ThreeMiBBatch(ulong firstSeq)
    {
        var ops = Enumerable.Range(0, 3).Select(i =>
        {
            var op = Put(firstSeq + (ulong)i, "blobs", "b" + (firstSeq + (ulong)i), "");
            op.Put.Value = ByteString.CopyFrom(new byte[MiB]); // MaxValueBytes each: a legal 3 MiB batch
            return op;
        }).ToArray();
        return Batch("flood", ops);
    }

    [Fact]
    public async Task Streams_of_3_MiB_batches_are_held_to_their_windows_and_the_queue_while_commits_stall()
    {
        const long queueCap = 12L * MiB;
        await using var s = await LoopbackServer.StartAsync(o =>
        {
            o.FsyncEveryCommit = false;
            o.MaxQueuedWriteBytes = queueCap;
            o.Limits.MaxInFlightBytesPerStream = 4 * MiB; // one 3 MiB batch in flight, the next waits
        });
        var shares = new List<CallOptions>();
        for (var i = 0; i < Streams; i++) shares.Add(LoopbackServer.Bearer((await s.NewShareAsync()).Live.LiveRef));

        // The committer is held: nothing commits, so nothing the peers send can leave the server.
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = s.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        // One connection per stream, as separate peers: on one connection the streams would share its
        // HTTP/2 window, and a parked stream's unread bytes could keep another's first batch out.
        var channels = shares.Select(_ => Channel(s.Address.ToString())).ToList();
        try
        {
            var before = GC.GetTotalMemory(forceFullCollection: true);

            var calls = shares.Select((auth, i) => Stub(channels[i]).AppendOps(auth)).ToList();
            var senders = calls.Select(async call =>
            {
                for (var b = 0; b < BatchesPerStream; b++) await call.RequestStream.WriteAsync(ThreeMiBBatch((ulong)b * 3 + 1));
                await call.RequestStream.CompleteAsync();
            }).ToList();

            // Every stream's reader is parked on a byte gate: its window, or the server's queue.
            await Wait.UntilAsync(() => s.Engine.StreamWindows.Waiting + s.Engine.Committer.QueuedBytes.Waiting == Streams, TimeSpan.FromSeconds(30), "s.Engine.StreamWindows.Waiting + s.Engine.Committer.QueuedBytes.Waiting == Streams");
            var held = GC.GetTotalMemory(forceFullCollection: true) - before;
            output.WriteLine($"held {held / MiB} MiB; queue {s.Engine.Committer.QueuedBytes.InUse / MiB} MiB; windows {s.Engine.StreamWindows.InUse / MiB} MiB");
            Assert.True(s.Engine.Committer.QueuedBytes.InUse <= queueCap);
            Assert.True(s.Engine.StreamWindows.InUse <= Streams * 4L * MiB);
            // Measured: the windows, the queue, one parked batch per stream and what the in-process clients
            // hold (about 17 MiB per stream in all), not the 180 MiB the peers try to send (20 × 3 MiB per
            // stream), which the old server read and queued (up to 64 batches per stream).
            Assert.True(held < 112L * MiB, $"{held / MiB} MiB held while {Streams} streams flood");
            Assert.All(senders, t => Assert.False(t.IsCompleted, t.Exception?.ToString() ?? "completed")); // the peers are stopped by flow control

            gate.TrySetResult();
            await blocker;
            await Task.WhenAll(senders).WaitAsync(TimeSpan.FromSeconds(60));
            foreach (var call in calls)
            {
                var acked = 0;
                while (await call.ResponseStream.MoveNext()) acked += call.ResponseStream.Current.Acks.Count(a => a.Status == OpStatus.Applied);
                Assert.Equal(BatchesPerStream * 3, acked);
                call.Dispose();
            }
            Assert.True(s.Engine.Committer.QueuedBytes.Peak <= queueCap);
            Assert.True(s.Engine.StreamWindows.Peak <= Streams * 4L * MiB + Streams * 64 * 1024); // windows, and acks as they replace batches
            Assert.Equal(0, s.Engine.Committer.QueuedBytes.InUse);
            await Wait.UntilAsync(() => s.Engine.StreamWindows.InUse == 0, TimeSpan.FromSeconds(30), "s.Engine.StreamWindows.InUse == 0");
        }
        finally
        {
            gate.TrySetResult(); // a failed assertion must not leave the committer held: the server could not stop
            foreach (var c in channels) c.Dispose();
        }
    }
}
