using System.CommandLine;
using System.Diagnostics;
using System.Text;
using ShareRpc.Client;
using ShareRpc.Protocol.V1;
using ShareRpc.Server.Hosting;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc demo</c>: the main job end to end on loopback with the embedded SQLite default —
/// a server, an agent that shares its session through a durable outbox, a peer that follows it
/// with a read-only capability, a dropped connection, and a revocation that fences the peer.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var ops = new Option<int>("--ops") { Description = "Ops the agent writes.", DefaultValueFactory = _ => 2000 };
        var keep = new Option<DirectoryInfo?>("--dir") { Description = "Keep the server data and outbox here (default: a temp dir, removed)." };
        var command = new Command("demo", "Run a server, a writer and a follower on loopback and show exactly-once delivery.") { ops, keep };
        command.SetAction(async (parse, ct) => await RunAsync(parse.GetValue(ops), parse.GetValue(keep), ct));
        return command;
    }

    private static async Task<int> RunAsync(int opCount, DirectoryInfo? keepDir, CancellationToken ct)
    {
        var dir = keepDir?.FullName ?? Directory.CreateTempSubdirectory("sharerpc-demo-").FullName;
        Directory.CreateDirectory(dir);
        try
        {
            await using var server = await ShareRpcServerHost.StartAsync(o => o.DataDirectory = Path.Combine(dir, "server"), cancellationToken: ct);
            var address = server.Address;
            Console.WriteLine($"1. server on {address}, data in {Path.Combine(dir, "server")} (SQLite, WAL, fsync per commit)");

            // The agent drops its first AppendOps response on purpose: the batch is committed on the
            // server, the ack never arrives, and the sender must replay the same batch.
            var dropped = 0;
            var faults = new ClientFaultHooks
            {
                BeforeRecordAck = _ => Interlocked.Exchange(ref dropped, 1) == 0
                    ? throw new IOException("demo: the first ack is lost on the way back")
                    : Task.CompletedTask,
            };
            await using var agent = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = Path.Combine(dir, "agent-outbox.db"), Faults = faults });
            var sturdy = await agent.EnsureShareAsync(address, "agent-session-42", "demo session", ct);
            Console.WriteLine($"2. agent created its share: {Redact(sturdy)}");

            var peerRef = (await agent.DelegateAsync(sturdy, new[] { Right.Read }, note: "peer", cancellationToken: ct)).SturdyRef;
            Console.WriteLine($"3. agent delegated a read-only capability to a peer: {Redact(peerRef)}");

            await using var peer = new ShareRpcClient();
            using var follow = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var seen = new List<CommittedOp>();
            var allSeen = new TaskCompletionSource();
            var follower = Task.Run(async () =>
            {
                try
                {
                    await foreach (var e in peer.SubscribeAsync(peerRef, 0, false, follow.Token))
                    {
                        if (e.Op is { } op)
                        {
                            seen.Add(op);
                            if (seen.Count == opCount)
                            {
                                allSeen.TrySetResult();
                            }
                        }
                    }
                }
                catch (Exception ex)
                {
                    allSeen.TrySetException(ex);
                    throw;
                }
            });

            var writer = agent.OpenWriter(sturdy);
            var sw = Stopwatch.StartNew();
            var pending = new List<PendingOp>(opCount);
            for (var i = 0; i < opCount; i++)
            {
                pending.Add(i % 10 == 0
                    ? await writer.AppendAsync("diffs", Encoding.UTF8.GetBytes($"diff {i}"))
                    : await writer.PutAsync("messages", $"msg-{i % 100:D3}", Encoding.UTF8.GetBytes($"message body {i}")));
            }

            await writer.FlushAsync(ct);
            var outcomes = await Task.WhenAll(pending.Select(p => p.Acked));
            Console.WriteLine($"4. agent wrote {opCount} ops through its outbox in {sw.ElapsedMilliseconds} ms; one ack was lost and its batch replayed:");
            Console.WriteLine($"   applied {outcomes.Count(o => o.Status == OpStatus.Applied)}, duplicate (replayed, not applied twice) {outcomes.Count(o => o.Status == OpStatus.Duplicate)}, rejected {outcomes.Count(o => o.Status == OpStatus.Rejected)}");

            await allSeen.Task.WaitAsync(TimeSpan.FromSeconds(60), ct);
            var cursors = seen.Select(s => s.Cursor).ToArray();
            var inOrder = seen.Select(s => s.Op.Seq).SequenceEqual(pending.Select(p => p.Seq));
            Console.WriteLine($"5. peer followed live: {seen.Count} ops, cursors {cursors.First()}..{cursors.Last()} with no gap: {cursors.SequenceEqual(Enumerable.Range(1, seen.Count).Select(i => (ulong)i))}, in seq order: {inOrder}, each op once: {seen.Select(s => s.Op.OpId).Distinct().Count() == seen.Count}");

            var docs = await agent.GetAllDocumentsAsync(sturdy, cancellationToken: ct).CountAsync(ct);
            var messageKeys = Enumerable.Range(0, opCount).Where(i => i % 10 != 0).Select(i => i % 100).Distinct().Count();
            var diffs = Enumerable.Range(0, opCount).Count(i => i % 10 == 0);
            Console.WriteLine($"6. snapshot: {docs} documents ({messageKeys} messages, last write wins, + {diffs} appended diffs): {docs == messageKeys + diffs}");

            var revoked = await agent.RevokeAsync(sturdy, ParseCapability(peerRef), ct);
            Console.WriteLine($"7. agent revoked the peer: epoch is now {revoked.Epoch}");
            try
            {
                await follower.WaitAsync(TimeSpan.FromSeconds(30), ct);
                Console.WriteLine("   (the peer's stream ended)");
            }
            catch (ShareRpcCallException ex)
            {
                Console.WriteLine($"   the peer's stream was fenced: {ex.StatusCode} ({ex.Reason})");
            }

            follow.Cancel();
            await server.StopAsync(ct);
            var ok = outcomes.All(o => o.Status is OpStatus.Applied or OpStatus.Duplicate) && seen.Count == opCount && inOrder && docs == messageKeys + diffs;
            Console.WriteLine(ok ? "demo: nothing lost, nothing applied twice." : "demo: FAILED an invariant");
            return ok ? 0 : 1;
        }
        finally
        {
            if (keepDir is null)
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                try
                {
                    Directory.Delete(dir, true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static string ParseCapability(string sturdyRef) => ShareRpc.Protocol.Refs.SturdyRef.Parse(sturdyRef).CapabilityId;

    // A sturdy ref is a bearer secret: never print the part after '#'.
    private static string Redact(string sturdyRef) => sturdyRef[..(sturdyRef.IndexOf('#') + 1)] + "…";
}
