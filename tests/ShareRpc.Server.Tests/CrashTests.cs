using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>
/// This assembly's entry point: <c>dotnet ShareRpc.Server.Tests.dll serve DATA_DIR</c> runs a server on
/// 127.0.0.1 (free port) and prints "listening on URL" once ready — the crash test kills it with SIGKILL.
/// </summary>
public static class CrashHost
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length != 2 || args[0] != "serve")
        {
            await Console.Error.WriteLineAsync("usage: serve DATA_DIR");
            return 2;
        }
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddShareRpcServer(o => o.DataDirectory = args[1]);
        builder.WebHost.ConfigureKestrel(k => k.ListenShareRpc(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapShareRpc();
        await app.StartAsync();
        Console.WriteLine("listening on " + app.Urls.First()); // the shared cleartext port lists its address once per protocol
        await app.WaitForShutdownAsync();
        return 0;
    }
}

public class CrashTests
{
    /// <summary>This assembly run as a server process (<see cref="CrashHost"/>), to be SIGKILLed.</summary>
    private sealed class ServerProcess : IAsyncDisposable
    {
        private readonly TestProcess _process;

        private ServerProcess(TestProcess process, Uri address)
        {
            _process = process;
            Address = address;
            Channel = GrpcChannel.ForAddress(address);
        }

        public Uri Address { get; }
        public GrpcChannel Channel { get; }

        public static async Task<ServerProcess> StartAsync(string dataDir)
        {
            var process = TestProcess.Start(typeof(CrashHost).Assembly.Location, "serve", dataDir);
            var line = await process.WaitForLineAsync(l => l.StartsWith("listening on ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            return new ServerProcess(process, new Uri(line["listening on ".Length..]));
        }

        /// <summary>SIGKILL: no shutdown code runs.</summary>
        public Task KillAsync() => _process.KillAsync();

        public async ValueTask DisposeAsync()
        {
            Channel.Dispose();
            await _process.DisposeAsync();
        }
    }

    [Fact]
    public async Task Server_killed_with_sigkill_during_appends_restarts_with_the_log_intact_and_dedupe_holding()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-crash-" + Guid.NewGuid().ToString("N"));
        try
        {
            string sturdyRef;
            var sent = new List<AppendOpsRequest>();
            var acked = new Dictionary<string, ulong>(); // op id → cursor
            await using (var first = await ServerProcess.StartAsync(dir))
            {
                var created = await Stub(first.Channel).CreateShareAsync(new CreateShareRequest { ShareKey = "crash", OwnerSecret = ByteString.CopyFrom(NewSecret()) });
                sturdyRef = created.SturdyRef;
                var live = await Stub(first.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = sturdyRef });
                using var call = Stub(first.Channel).AppendOps(LoopbackServer.Bearer(live.LiveRef));
                var enoughAcks = new TaskCompletionSource();
                var reading = Task.Run(async () =>
                {
                    try
                    {
                        while (await call.ResponseStream.MoveNext())
                        {
                            foreach (var a in call.ResponseStream.Current.Acks)
                            {
                                Assert.Equal(OpStatus.Applied, a.Status);
                                lock (acked) acked[a.OpId] = a.Cursor;
                            }
                            if (acked.Count >= 200) enoughAcks.TrySetResult();
                        }
                    }
                    catch (RpcException) { /* the kill */ }
                    enoughAcks.TrySetResult();
                });
                var writing = Task.Run(async () =>
                {
                    ulong seq = 1;
                    try
                    {
                        for (var b = 0; b < 100_000; b++)
                        {
                            var batch = Batch("p", Enumerable.Range(0, 4).Select(_ => Put(seq, "d", "k" + seq++, new string('v', 100))).ToArray());
                            lock (sent) sent.Add(batch);
                            await call.RequestStream.WriteAsync(batch);
                        }
                    }
                    catch (Exception) { /* the kill */ }
                });
                await enoughAcks.Task;
                await first.KillAsync(); // mid-stream: batches are in flight
                await Task.WhenAll(reading, writing);
            }
            Assert.True(acked.Count >= 200);

            await using var second = await ServerProcess.StartAsync(dir);
            var again = await Stub(second.Channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = sturdyRef });
            var head = again.Cursor;
            Assert.True(head >= (ulong)acked.Count);

            // The log is intact and gap-free, and every acked op is where its ack said.
            var auth = LoopbackServer.Bearer(again.LiveRef);
            var log = new List<CommittedOp>();
            using (var sub = Stub(second.Channel).Subscribe(new SubscribeRequest { FromCursor = 1 }, auth))
            {
                while (log.Count < (int)head && await sub.ResponseStream.MoveNext())
                    if (sub.ResponseStream.Current.EventCase == SubscribeResponse.EventOneofCase.Op) log.Add(sub.ResponseStream.Current.Op);
            }
            Assert.Equal(Enumerable.Range(1, (int)head).Select(c => (ulong)c), log.Select(o => o.Cursor));
            Assert.Equal(Enumerable.Range(1, (int)head).Select(s => (ulong)s), log.Select(o => o.Op.Seq)); // seq order = cursor order
            var byOp = log.ToDictionary(o => o.Op.OpId, o => o.Cursor);
            foreach (var (opId, cursor) in acked) Assert.Equal(cursor, byOp[opId]);

            // Resend everything that was sent, byte for byte, from the oldest: dedupe holds across the crash.
            using (var call = Stub(second.Channel).AppendOps(auth))
            {
                var reading = Task.Run(async () =>
                {
                    var acks = new List<AppendOpsResponse>();
                    while (await call.ResponseStream.MoveNext()) acks.Add(call.ResponseStream.Current);
                    return acks;
                });
                foreach (var b in sent) await call.RequestStream.WriteAsync(b);
                await call.RequestStream.CompleteAsync();
                var acks = await reading;
                Assert.Equal(sent.Count, acks.Count);
                foreach (var a in acks.SelectMany(x => x.Acks))
                {
                    if (byOp.TryGetValue(a.OpId, out var cursor)) Assert.Equal((OpStatus.Duplicate, cursor), (a.Status, a.Cursor));
                    else Assert.Equal(OpStatus.Applied, a.Status);
                }
                var total = (ulong)sent.Sum(b => b.Ops.Count);
                Assert.Equal(total, acks[^1].Cursor); // every sent op applied exactly once
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
