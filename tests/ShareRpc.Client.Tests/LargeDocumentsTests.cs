using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 13, item 5, through the SDK: GetSnapshot pages were capped by count only, so a share of six
/// 1 MiB documents made every page exceed the 4 MiB message limit (RESOURCE_EXHAUSTED) and
/// <see cref="ShareRpcClient.GetAllDocumentsAsync"/> could not read it. Pages are now sized by bytes.
/// </summary>
public sealed class LargeDocumentsTests : IAsyncLifetime
{
    private const int OneMiB = 1024 * 1024;
    private InProcessServer _server = null!;
    private readonly TempDir _dir = new();

    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync(o => o.FsyncEveryCommit = false);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task GetAllDocumentsAsync_reads_a_share_of_six_1_MiB_documents()
    {
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("outbox.db") });
        var sturdy = await client.EnsureShareAsync(_server.Address, "files");
        var writer = client.OpenWriter(sturdy);
        var ops = new List<PendingOp>();
        for (var i = 1; i <= 6; i++)
        {
            var value = new byte[OneMiB]; // MaxValueBytes
            value[0] = (byte)i;
            ops.Add(await writer.PutAsync("files", "f" + i, value));
        }
        await writer.FlushAsync();
        Assert.All(ops, op => Assert.Equal(OpStatus.Applied, op.Acked.Result.Status));

        var documents = new List<Document>();
        await foreach (var d in client.GetAllDocumentsAsync(sturdy)) documents.Add(d);

        Assert.Equal(Enumerable.Range(1, 6).Select(i => "f" + i), documents.Select(d => d.Key));
        Assert.All(documents, d => Assert.Equal(OneMiB, d.Value.Length));
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (byte)i), documents.Select(d => d.Value[0]));
    }
}
