using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>Issue 13, item 9: the SDK refuses an op the server would refuse before it is durable.</summary>
public sealed class ValidationTests : IDisposable
{
    private const string Ref = "sharerpc://127.0.0.1:1/share-v/cap-1#c2VjcmV0";
    private readonly TempDir _dir = new("validation-");

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string, string> Malformed => new()
    {
        { "empty collection", "put.collection: must not be empty" },
        { "value of 1.1 MiB", "put.value: 1153434 bytes exceeds MaxValueBytes = 1048576 bytes" },
        { "key of 513 bytes", "put.key: 513 bytes exceeds MaxKeyBytes = 512 bytes" },
        { "key of 200 three-byte chars", "put.key: 600 bytes exceeds MaxKeyBytes = 512 bytes" },
        { "empty delete key", "delete.key: must not be empty" },
        { "collection with a newline", "append.collection: must not contain control characters" },
        { "unpaired surrogate in a key", "put.key: must be valid UTF-8" },
        { "op id of 129 bytes", "op_id: 129 bytes exceeds MaxIdBytes = 128 bytes" },
        { "65 depends_on", "depends_on: 65 entries exceeds MaxDependsOnPerOp = 64 entries" },
        { "no kind", "kind: an op must be one of put, delete, append" },
    };

    private static Task<PendingOp> Enqueue(ShareWriter writer, string what) => what switch
    {
        "empty collection" => writer.PutAsync("", "k", new byte[1]),
        "value of 1.1 MiB" => writer.PutAsync("c", "k", new byte[1_153_434]),
        "key of 513 bytes" => writer.PutAsync("c", new string('k', 513), new byte[1]),
        "key of 200 three-byte chars" => writer.PutAsync("c", new string('\u6f22', 200), new byte[1]),
        "empty delete key" => writer.DeleteAsync("c", ""),
        "collection with a newline" => writer.AppendAsync("c\n", new byte[1]),
        "unpaired surrogate in a key" => writer.PutAsync("c", "k\uD800", new byte[1]),
        "op id of 129 bytes" => writer.EnqueueAsync(new Op { OpId = new string('i', 129), Delete = new Delete { Collection = "c", Key = "k" } }),
        "65 depends_on" => writer.PutAsync("c", "k", new byte[1], dependsOn: Enumerable.Range(0, 65).Select(i => "op-" + i)),
        "no kind" => writer.EnqueueAsync(new Op()),
        _ => throw new ArgumentOutOfRangeException(nameof(what)),
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task An_op_the_server_would_refuse_throws_at_enqueue_naming_the_field_and_nothing_is_durable(string what, string message)
    {
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("outbox.db") });
        var writer = client.OpenWriter(Ref);
        var ex = await Assert.ThrowsAsync<InvalidOpException>(() => Enqueue(writer, what));
        Assert.StartsWith(message, ex.Message);
        Assert.Equal(message[..message.IndexOf(':')], ex.Field);

        var good = await writer.PutAsync("c", "k", new byte[1]);
        Assert.Equal(1UL, good.Seq); // the refused op took no seq: it never reached the outbox
        Assert.Equal(1, (await client.Outbox.GetStatusAsync(writer.ShareId)).PendingOps);
    }

    [Fact]
    public async Task Lower_limits_match_a_server_configured_tighter_and_the_batch_size_must_fit_its_batch_limit()
    {
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("tight.db"), Limits = new ShareRpcClientLimits { MaxValueBytes = 100 } });
        var writer = client.OpenWriter(Ref);
        await writer.PutAsync("c", "k", new byte[100]);
        var ex = await Assert.ThrowsAsync<InvalidOpException>(() => writer.AppendAsync("c", new byte[101]));
        Assert.Equal("append.value: 101 bytes exceeds MaxValueBytes = 100 bytes", ex.Message);

        var refused = Assert.Throws<ArgumentOutOfRangeException>(() => new ShareRpcClient(new ShareRpcClientOptions
        {
            Limits = new ShareRpcClientLimits { MaxOpsPerBatch = 100 },
            Outbox = new Outbox.OutboxOptions { MaxBatchOps = 512 },
        }));
        Assert.Contains("Outbox.MaxBatchOps must be <= Limits.MaxOpsPerBatch (was 512 > 100).", refused.Message);
    }
}
