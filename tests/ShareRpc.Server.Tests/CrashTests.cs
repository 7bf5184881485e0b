using System.Diagnostics;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ShareRpc.Protocol;
using ShareRpc.Protocol.V1;
using ShareRpc.Server.Hosting;
using ShareRpc.Wire;
using static ShareRpc.Server.Tests.EngineFixture;

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
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapShareRpc();
        await app.StartAsync();
        Console.WriteLine("listening on " + app.GetListeningAddresses().Single());
        await app.WaitForShutdownAsync();
        return 0;
    }
}

public class CrashTests
{
    private sealed class ServerProcess : IAsyncDisposable
    {
        private readonly Process _process;

        private ServerProcess(Process process, Uri address)
        {
            _process = process;
            Address = address;
            Channel = GrpcChannel.ForAddress(address);
        }

        public Uri Address { get; }
        public GrpcChannel Channel { get; }

        public static async Task<ServerProcess> StartAsync(string dataDir)
        {
            var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } p ? p : "dotnet";
            var psi = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add(typeof(CrashHost).Assembly.Location);
            psi.ArgumentList.Add("serve");
            psi.ArgumentList.Add(dataDir);
            var process = Process.Start(psi)!;
            _ = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(cts.Token)
                    ?? throw new InvalidOperationException("the server process exited before listening");
                if (line.StartsWith("listening on ", StringComparison.Ordinal))
                    return new ServerProcess(process, new Uri(line["listening on ".Length..]));
            }
        }

        /// <summary>SIGKILL: no shutdown code runs.</summary>
        public async Task KillAsync()
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        public async ValueTask DisposeAsync()
        {
            Channel.Dispose();
            if (!_process.HasExited) await KillAsync();
            _process.Dispose();
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
                var created = await first.Channel.AsyncUnaryCall(ShareRpcMethods.CreateShare,
                    new CreateShareRequest { ShareKey = "crash", OwnerSecret = ByteString.CopyFrom(NewSecret()) });
                sturdyRef = created.SturdyRef;
                var live = await first.Channel.AsyncUnaryCall(ShareRpcMethods.RedeemShare, new RedeemShareRequest { SturdyRef = sturdyRef });
                using var call = first.Channel.AsyncDuplexStreamingCall(ShareRpcMethods.AppendOps, LoopbackServer.Bearer(live.LiveRef));
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
            var again = await second.Channel.AsyncUnaryCall(ShareRpcMethods.RedeemShare, new RedeemShareRequest { SturdyRef = sturdyRef });
            var head = again.Cursor;
            Assert.True(head >= (ulong)acked.Count);

            // The log is intact and gap-free, and every acked op is where its ack said.
            var auth = LoopbackServer.Bearer(again.LiveRef);
            var log = new List<CommittedOp>();
            using (var sub = second.Channel.AsyncServerStreamingCall(ShareRpcMethods.Subscribe, new SubscribeRequest { FromCursor = 1 }, auth))
            {
                while (log.Count < (int)head && await sub.ResponseStream.MoveNext())
                    if (sub.ResponseStream.Current.EventCase == SubscribeResponse.EventOneofCase.Op) log.Add(sub.ResponseStream.Current.Op);
            }
            Assert.Equal(Enumerable.Range(1, (int)head).Select(c => (ulong)c), log.Select(o => o.Cursor));
            Assert.Equal(Enumerable.Range(1, (int)head).Select(s => (ulong)s), log.Select(o => o.Op.Seq)); // seq order = cursor order
            var byOp = log.ToDictionary(o => o.Op.OpId, o => o.Cursor);
            foreach (var (opId, cursor) in acked) Assert.Equal(cursor, byOp[opId]);

            // Resend everything that was sent, byte for byte, from the oldest: dedupe holds across the crash.
            using (var call = second.Channel.AsyncDuplexStreamingCall(ShareRpcMethods.AppendOps, auth))
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
