using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Issue 13, item 5: snapshots failed past 4 MiB. Pages were capped by count only, so six 1 MiB
/// documents made GetSnapshot and Subscribe(include_snapshot) exceed the 4 MiB message limit and
/// answer RESOURCE_EXHAUSTED. Pages and chunks are now sized by bytes (MaxSnapshotPageBytes), over
/// a real HTTP/2 connection with grpc-dotnet's 4 MiB limits on both ends.
/// </summary>
public sealed class LargeSnapshotTests : IAsyncLifetime
{
    private const int Documents = 6;
    private const int OneMiB = 1024 * 1024;

    private LoopbackServer _s = null!;

    public async Task InitializeAsync() => _s = await LoopbackServer.StartAsync(o => o.FsyncEveryCommit = false);

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private async Task<CallOptions> ShareOfSixOneMiBDocumentsAsync()
    {
        var (_, live) = await _s.NewShareAsync();
        var auth = LoopbackServer.Bearer(live.LiveRef);
        using var call = Stub(_s.Channel).AppendOps(auth);
        for (ulong i = 1; i <= Documents; i++)
        {
            var op = Put(i, "files", "f" + i, "");
            op.Put.Value = ByteString.CopyFrom(new byte[OneMiB]); // exactly MaxValueBytes
            await call.RequestStream.WriteAsync(Batch("p", op));
        }
        await call.RequestStream.CompleteAsync();
        var acks = 0;
        while (await call.ResponseStream.MoveNext()) acks += call.ResponseStream.Current.Acks.Count(a => a.Status == OpStatus.Applied);
        Assert.Equal(Documents, acks);
        return auth;
    }

    [Fact]
    public async Task GetSnapshot_pages_six_1_MiB_documents_each_page_under_the_4_MiB_message_limit()
    {
        var auth = await ShareOfSixOneMiBDocumentsAsync();
        var keys = new List<string>();
        var token = "";
        var pages = 0;
        do
        {
            var page = await Stub(_s.Channel).GetSnapshotAsync(new GetSnapshotRequest { PageToken = token }, auth); // page_size 0: the default 100
            Assert.True(page.CalculateSize() <= _s.Engine.Options.Limits.MaxSnapshotPageBytes + 64 * 1024);
            Assert.All(page.Documents, d => Assert.Equal(OneMiB, d.Value.Length));
            keys.AddRange(page.Documents.Select(d => d.Key));
            token = page.NextPageToken;
            pages++;
        } while (token != "");
        Assert.Equal(Enumerable.Range(1, Documents).Select(i => "f" + i), keys);
        Assert.True(pages >= 3, $"{pages} pages"); // 2 MiB pages: at most two 1 MiB documents each
    }

    [Fact]
    public async Task Subscribe_with_snapshot_streams_six_1_MiB_documents_in_chunks_under_the_message_limit()
    {
        var auth = await ShareOfSixOneMiBDocumentsAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var sub = Stub(_s.Channel).Subscribe(new SubscribeRequest { IncludeSnapshot = true }, auth.WithCancellationToken(cts.Token));
        var chunks = new List<Snapshot>();
        while (await sub.ResponseStream.MoveNext(cts.Token))
        {
            var e = sub.ResponseStream.Current;
            Assert.Equal(SubscribeResponse.EventOneofCase.Snapshot, e.EventCase);
            chunks.Add(e.Snapshot);
            if (e.Snapshot.LastChunk) break;
        }
        Assert.True(chunks.Count >= 3, $"{chunks.Count} chunks");
        Assert.All(chunks, c => Assert.Equal((ulong)Documents, c.Cursor));
        Assert.All(chunks[..^1], c => Assert.False(c.LastChunk));
        Assert.Equal(Enumerable.Range(1, Documents).Select(i => "f" + i), chunks.SelectMany(c => c.Documents).Select(d => d.Key));
    }
}
