// ShareRpc with nothing but Grpc.Net.Client and the generated stubs: create a share, redeem it,
// append two ops over AppendOps, subscribe from the start and print them.
// Usage: PlainGrpcClient http://127.0.0.1:7878
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Sharerpc.V1;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: PlainGrpcClient SERVER_ADDRESS (e.g. http://127.0.0.1:7878)");
    return 2;
}

var address = args[0];
var client = new ShareRpc.ShareRpcClient(GrpcChannel.ForAddress(address));
var deadline = DateTime.UtcNow.AddSeconds(30);

// The key and the secret make CreateShare safe to retry: the same pair finds the same share.
var share = await client.CreateShareAsync(new CreateShareRequest
{
    ShareKey = $"plain-{Guid.NewGuid():N}",
    OwnerSecret = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)),
}, deadline: deadline);
Console.WriteLine($"created {share.ShareId}");

var live = await client.RedeemShareAsync(new RedeemShareRequest { SturdyRef = share.SturdyRef }, deadline: deadline);
var auth = new Metadata { { "authorization", $"Bearer {live.LiveRef}" } };
Console.WriteLine($"redeemed: epoch {live.Epoch}, rights {string.Join(",", live.Rights)}");

// One batch of two ops; the server answers with one ack per batch.
var batch = new AppendOpsRequest { BatchId = Guid.NewGuid().ToString(), ProducerId = "plain-client" };
string[] words = ["hello", "world"];
for (var i = 0; i < words.Length; i++)
{
    batch.Ops.Add(new Op
    {
        OpId = Guid.CreateVersion7().ToString(),
        Seq = (ulong)(i + 1),
        Append = new Append { Collection = "notes", Value = ByteString.CopyFromUtf8(words[i]) },
    });
}

using (var append = client.AppendOps(auth, deadline))
{
    await append.RequestStream.WriteAsync(batch);
    await append.RequestStream.CompleteAsync();
    await foreach (var ack in append.ResponseStream.ReadAllAsync())
        Console.WriteLine($"ack {ack.BatchId}: {string.Join(", ", ack.Acks.Select(a => $"{a.Status} at {a.Cursor}"))}");
}

// A subscription stays open for live ops: stop once both are printed.
using var subscription = client.Subscribe(new SubscribeRequest { FromCursor = 0 }, auth, deadline);
var printed = 0;
await foreach (var e in subscription.ResponseStream.ReadAllAsync())
{
    if (e.Op is not { } op) continue; // heartbeats carry only the head
    Console.WriteLine($"{op.Cursor}: {op.Op.Append.Value.ToStringUtf8()}");
    if (++printed == words.Length) break;
}

return 0;
