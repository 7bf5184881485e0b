using ShareRpc.Client;

// A server: ShareRpc on Grpc.AspNetCore (HTTP/2), the embedded SQLite store, a free loopback port.
var dir = Directory.CreateTempSubdirectory("sharerpc-quickstart-").FullName;
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders(); // quiet: the lines below are the point
builder.Services.AddShareRpcServer(o => o.DataDirectory = Path.Combine(dir, "server"));
builder.WebHost.ConfigureKestrel(k => k.ListenShareRpc(System.Net.IPAddress.Loopback, port: 0));
await using var app = builder.Build();
app.MapShareRpc();
await app.StartAsync();

// A client: each op is durable in its outbox before it is sent; the server applies it once.
await using var client = new ShareRpcClient(new() { OutboxPath = Path.Combine(dir, "agent.db") });
var sturdyRef = await client.EnsureShareAsync(app.Urls.First(), "my-session");
var writer = client.OpenWriter(sturdyRef);
foreach (var word in new[] { "hello", "shared", "world" })
    await writer.AppendAsync("notes", System.Text.Encoding.UTF8.GetBytes(word));
await writer.FlushAsync(); // every op acked

await foreach (var e in client.SubscribeAsync(sturdyRef, fromCursor: 0)) // resumes by itself
{
    if (e.Op is not { } op) continue; // heartbeats carry only the head
    Console.WriteLine($"{op.Cursor}: {op.Op.Append.Value.ToStringUtf8()}");
    if (op.Cursor == 3) break;
}
