using System.Text;
using Grpc.Core;
using ShareRpc.Client;
using Sharerpc.V1;
using static ShareRpc.Cluster.Tests.NodeCalls;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Cluster.Tests;

/// <summary>
/// Issue 7, "done when": two real server processes on one real PostgreSQL. Nodes share nothing
/// but the database and the live-ref key file, so every guarantee checked here comes from the
/// database (constraints, the share row lock) and LISTEN/NOTIFY, not from one process's memory.
/// </summary>
public sealed class ClusterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharerpc-cluster-client-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task A_subscriber_on_node_B_sees_every_op_written_through_node_A_live_in_cursor_order()
    {
        await using var cluster = await Cluster.StartAsync(2);
        var (a, b) = (cluster.Nodes[0], cluster.Nodes[1]);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = Path.Combine(_dir, "outbox.db") });
        var sturdy = await client.EnsureShareAsync(a.Address, "live-across-nodes");
        var writer = client.OpenWriter(sturdy);

        // The subscriber is on B from before the first write, so everything reaches it live.
        var live = await RedeemAsync(b.Channel, sturdy);
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var seen = new List<CommittedOp>();
        var progress = new SemaphoreSlim(0);
        using var sub = Stub(b.Channel).Subscribe(new SubscribeRequest(), Bearer(live.LiveRef, stop.Token));
        var reading = Task.Run(async () =>
        {
            while (await sub.ResponseStream.MoveNext())
            {
                if (sub.ResponseStream.Current.Op is { } op)
                {
                    lock (seen) seen.Add(op);
                    progress.Release();
                }
            }
        });

        var written = new List<string>();
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 500; i++)
            {
                var p = await writer.PutAsync("doc", "k" + (i % 50), Encoding.UTF8.GetBytes($"r{round} v{i}"));
                written.Add(p.OpId);
            }
            await writer.FlushAsync(); // acked by A: committed in PostgreSQL

            // B learns of A's commits by NOTIFY, not by its idle heartbeat (5 s): each round arrives well within it.
            var deadline = DateTime.UtcNow.AddSeconds(4);
            while (Count(seen) < written.Count)
            {
                var left = deadline - DateTime.UtcNow;
                Assert.True(left > TimeSpan.Zero && await progress.WaitAsync(left),
                    $"round {round}: B delivered {Count(seen)} of {written.Count} ops within 4 s of A's acks");
            }
        }

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => reading); // ended by our cancellation
        Assert.Equal(written, seen.Select(o => o.Op.OpId));
        Assert.Equal(Enumerable.Range(1, written.Count).Select(i => (ulong)i), seen.Select(o => o.Cursor));
    }

    private static int Count(List<CommittedOp> seen)
    {
        lock (seen) return seen.Count;
    }

    [Fact]
    public async Task The_same_batch_resent_to_node_B_after_an_ack_from_node_A_is_duplicate_with_the_original_cursors()
    {
        await using var cluster = await Cluster.StartAsync(2);
        var (a, b) = (cluster.Nodes[0], cluster.Nodes[1]);
        var created = await CreateAsync(a.Channel, "resend-across-nodes");
        var live = await RedeemAsync(a.Channel, created.SturdyRef);
        var batch = Batch("p", Put(1, "doc", "x", "1"), Append(2, "chat", "hello"), Put(3, "doc", "x", "2"));

        var first = await AppendAsync(a.Channel, live.LiveRef, batch);
        Assert.All(first.Acks, ack => Assert.Equal(OpStatus.Applied, ack.Status));
        Assert.Equal([1UL, 2UL, 3UL], first.Acks.Select(ack => ack.Cursor));

        // The live ref A issued is honoured by B (one key file), and B dedupes from the shared tables.
        var resent = await AppendAsync(b.Channel, live.LiveRef, batch);
        Assert.Equal(BatchStatus.Accepted, resent.BatchStatus);
        Assert.All(resent.Acks, ack => Assert.Equal(OpStatus.Duplicate, ack.Status));
        Assert.Equal(first.Acks.Select(ack => (ack.OpId, ack.Cursor, ack.Version)), resent.Acks.Select(ack => (ack.OpId, ack.Cursor, ack.Version)));

        // And the producer's order continues on B where A left it.
        var next = await AppendAsync(b.Channel, live.LiveRef, Batch("p", Put(4, "doc", "x", "3")));
        Assert.Equal((OpStatus.Applied, 4UL, 3UL), (next.Acks[0].Status, next.Acks[0].Cursor, next.Acks[0].Version));
        var gap = await AppendAsync(a.Channel, live.LiveRef, Batch("p", Put(6, "doc", "x", "4")));
        Assert.Equal((BatchStatus.OutOfOrder, 5UL), (gap.BatchStatus, gap.ExpectedSeq));
        Assert.Equal(4, (await ReadLogAsync(b.Channel, created.SturdyRef)).Count);
    }

    [Fact]
    public async Task A_revoke_on_node_A_fences_appends_on_node_B_under_the_old_epoch()
    {
        await using var cluster = await Cluster.StartAsync(2);
        var (a, b) = (cluster.Nodes[0], cluster.Nodes[1]);
        var created = await CreateAsync(a.Channel, "fence-across-nodes");
        var owner = await RedeemAsync(a.Channel, created.SturdyRef);
        var agent = await Stub(a.Channel).DelegateCapabilityAsync(new DelegateCapabilityRequest { Secret = Google.Protobuf.ByteString.CopyFrom(NewSecret()), Rights = { Right.Append, Right.Read } }, Bearer(owner.LiveRef));
        var agentLive = await RedeemAsync(b.Channel, agent.SturdyRef);
        Assert.Equal(OpStatus.Applied, (await AppendAsync(b.Channel, agentLive.LiveRef, Batch("agent", Put(1, "doc", "a", "1")))).Acks[0].Status);

        // A stream on B opened before the revoke.
        using var open = Stub(b.Channel).AppendOps(Bearer(agentLive.LiveRef));
        await open.RequestStream.WriteAsync(Batch("agent", Put(2, "doc", "a", "2")));
        Assert.True(await open.ResponseStream.MoveNext());

        var revoked = await Stub(a.Channel).RevokeCapabilityAsync(new RevokeCapabilityRequest { CapabilityId = agent.CapabilityId }, Bearer(owner.LiveRef));
        Assert.Equal(owner.Epoch + 1, revoked.Epoch);

        // Old live refs on B: the revoked agent is refused, and so is the owner's until it redeems again.
        var e1 = await Assert.ThrowsAnyAsync<RpcException>(() => AppendAsync(b.Channel, agentLive.LiveRef, Batch("agent", Put(3, "doc", "a", "3"))));
        Assert.Equal((StatusCode.PermissionDenied, Reasons.Revoked), (e1.StatusCode, Reason(e1)));
        var e2 = await Assert.ThrowsAnyAsync<RpcException>(() => AppendAsync(b.Channel, owner.LiveRef, Batch("owner", Put(1, "doc", "o", "1"))));
        Assert.Equal((StatusCode.Unauthenticated, Reasons.EpochStale), (e2.StatusCode, Reason(e2)));

        // The stream opened before the revoke applies nothing more.
        var e3 = await Assert.ThrowsAnyAsync<RpcException>(async () =>
        {
            try
            {
                await open.RequestStream.WriteAsync(Batch("agent", Put(3, "doc", "a", "3")));
            }
            catch (RpcException)
            {
                // The server already ended the call: Grpc.Net.Client fails the write CANCELLED; the response has the status.
            }
            while (await open.ResponseStream.MoveNext()) { }
        });
        Assert.Contains(e3.StatusCode, new[] { StatusCode.PermissionDenied, StatusCode.Unauthenticated });

        var fresh = await RedeemAsync(b.Channel, created.SturdyRef);
        Assert.Equal(revoked.Epoch, fresh.Epoch);
        Assert.Equal(OpStatus.Applied, (await AppendAsync(b.Channel, fresh.LiveRef, Batch("owner", Put(1, "doc", "o", "1")))).Acks[0].Status);
        var log = await ReadLogAsync(b.Channel, created.SturdyRef);
        Assert.Equal(["a", "a", "o"], log.Select(o => o.Op.Put.Key));
        Assert.Equal(["1", "2", "1"], log.Select(o => o.Op.Put.Value.ToStringUtf8()));
    }

    private sealed record Sent(string Producer, string OpId, bool AfterRevokeReturned);

    [Fact]
    public async Task Racing_revokes_on_node_A_against_appends_on_node_B_never_apply_an_op_sent_after_the_revoke_returned()
    {
        const int rounds = 100;
        await using var cluster = await Cluster.StartAsync(2);
        var (a, b) = (cluster.Nodes[0], cluster.Nodes[1]);
        var created = await CreateAsync(a.Channel, "revoke-race");
        var rng = new Random(7);
        var sent = new List<Sent>();
        var applied = new HashSet<string>(StringComparer.Ordinal);
        int sentAfter = 0, raced = 0; // rounds whose racing stream still sent after the revoke returned (B's fence usually ends it first)

        for (var round = 0; round < rounds; round++)
        {
            var owner = await RedeemAsync(a.Channel, created.SturdyRef);
            var agent = await Stub(a.Channel).DelegateCapabilityAsync(new DelegateCapabilityRequest { Secret = Google.Protobuf.ByteString.CopyFrom(NewSecret()), Rights = { Right.Append } }, Bearer(owner.LiveRef));
            var live = await RedeemAsync(b.Channel, agent.SturdyRef);
            var producer = "agent-" + round;
            var revokeReturned = 0;
            var ackedBeforeRevoke = rng.Next(0, 4);
            var acked = 0;
            var ackedEnough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (ackedBeforeRevoke == 0) ackedEnough.SetResult();

            using var call = Stub(b.Channel).AppendOps(Bearer(live.LiveRef));
            // Writer: one-op batches, pipelined, until the stream fails or 3 batches went out after the revoke returned.
            var writing = Task.Run(async () =>
            {
                var after = 0;
                for (ulong seq = 1; after < 3 && seq < 10_000; seq++)
                {
                    var isAfter = Volatile.Read(ref revokeReturned) == 1;
                    var batch = Batch(producer, Put(seq, "doc", producer, seq.ToString()));
                    lock (sent) sent.Add(new Sent(producer, batch.Ops[0].OpId, isAfter));
                    try
                    {
                        await call.RequestStream.WriteAsync(batch);
                    }
                    catch (Exception)
                    {
                        return; // the server ended the stream (the fence)
                    }
                    if (isAfter) after++;
                    if (seq % 4 == 0) await Task.Yield();
                }
                try { await call.RequestStream.CompleteAsync(); } catch (Exception) { }
            });
            var reading = Task.Run(async () =>
            {
                try
                {
                    while (await call.ResponseStream.MoveNext())
                    {
                        foreach (var ack in call.ResponseStream.Current.Acks)
                        {
                            if (ack.Status == OpStatus.Applied) lock (applied) applied.Add(ack.OpId);
                        }
                        if (Interlocked.Increment(ref acked) >= ackedBeforeRevoke) ackedEnough.TrySetResult();
                    }
                    return (StatusCode?)null;
                }
                catch (RpcException e)
                {
                    ackedEnough.TrySetResult();
                    return e.StatusCode;
                }
            });

            await ackedEnough.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var revoked = await Stub(a.Channel).RevokeCapabilityAsync(new RevokeCapabilityRequest { CapabilityId = agent.CapabilityId }, Bearer(owner.LiveRef));
            Volatile.Write(ref revokeReturned, 1);
            Assert.Equal(owner.Epoch + 1, revoked.Epoch);
            await writing.WaitAsync(TimeSpan.FromSeconds(30));
            var end = await reading.WaitAsync(TimeSpan.FromSeconds(30));
            // The stream must end with the fence's error, never OK.
            Assert.True(end is StatusCode.PermissionDenied or StatusCode.Unauthenticated, $"round {round}: the stream ended with {end?.ToString() ?? "OK"}");
            lock (sent)
            {
                if (sent.Any(s => s.AfterRevokeReturned && s.Producer == producer)) sentAfter++;
            }

            // The stale holder reconnects to B with its old live ref: refused, and nothing of it applied.
            var late = Batch(producer, Put(50_000, "doc", producer, "late"));
            lock (sent) sent.Add(new Sent(producer, late.Ops[0].OpId, true));
            var refused = await Assert.ThrowsAnyAsync<RpcException>(() => AppendAsync(b.Channel, live.LiveRef, late));
            Assert.Equal((StatusCode.PermissionDenied, Reasons.Revoked), (refused.StatusCode, Reason(refused)));
            if (Volatile.Read(ref acked) > ackedBeforeRevoke) raced++;
        }

        // What the database holds is the truth: read it back through B.
        var log = await ReadLogAsync(b.Channel, created.SturdyRef);
        var inLog = log.Select(o => o.Op.OpId).ToHashSet(StringComparer.Ordinal);
        var lateApplied = sent.Where(s => s.AfterRevokeReturned && inLog.Contains(s.OpId)).ToList();
        Assert.True(lateApplied.Count == 0, $"{lateApplied.Count} ops sent after their revoke returned were applied ({sentAfter} rounds raced a send on the open stream past the revoke)");
        Assert.Subset(inLog, applied); // every APPLIED ack is in the log
        Assert.Equal(log.Count, inLog.Count); // each op once
        Assert.True(raced > 0, "no round had batches applied while its revoke was on the way");
    }

    [Fact]
    public async Task A_client_fails_over_from_node_A_killed_mid_stream_to_node_B_every_op_applied_once_in_producer_order()
    {
        await using var cluster = await Cluster.StartAsync(2, balanced: true);
        var (a, b) = (cluster.Nodes[0], cluster.Nodes[1]);
        var lb = $"http://127.0.0.1:{cluster.Balancer!.Port}";
        const int perWriter = 3000;
        var options = (string name) => new ShareRpcClientOptions { OutboxPath = Path.Combine(_dir, name + ".db"), InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(300) };
        await using var c1 = new ShareRpcClient(options("w1"));
        await using var c2 = new ShareRpcClient(options("w2"));
        var sturdy = await c1.EnsureShareAsync(lb, "failover");
        var w1 = c1.OpenWriter(sturdy);
        var w2 = c2.OpenWriter(sturdy);

        var ops1 = new List<PendingOp>();
        var ops2 = new List<PendingOp>();
        var killed = false;
        for (var i = 0; i < perWriter; i++)
        {
            ops1.Add(await w1.AppendAsync("chat", Encoding.UTF8.GetBytes("one " + i)));
            ops2.Add(await w2.PutAsync("doc", "k" + (i % 64), Encoding.UTF8.GetBytes("two " + i)));
            if (!killed && i >= perWriter / 3 && await ops1[perWriter / 6].Acked.WaitAsync(TimeSpan.FromSeconds(30)) is { })
            {
                await a.KillAsync(); // SIGKILL, mid-stream: batches in flight, acks lost
                killed = true;
            }
        }

        using var flush = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await Task.WhenAll(w1.FlushAsync(flush.Token), w2.FlushAsync(flush.Token));
        Assert.True(a.Process.HasExited);

        var log = await ReadLogAsync(b.Channel, sturdy);
        Assert.Equal(2 * perWriter, log.Count);
        Assert.Equal(log.Count, log.Select(o => o.Op.OpId).Distinct().Count()); // each op applied once
        foreach (var (writer, ops) in new[] { ("w1", ops1), ("w2", ops2) })
        {
            var mine = ops.Select(p => p.OpId).ToHashSet();
            var applied = log.Where(o => mine.Contains(o.Op.OpId)).ToList();
            Assert.Equal(ops.Select(p => p.OpId), applied.Select(o => o.Op.OpId)); // per-producer order = enqueue order
            Assert.Equal(ops.Select(p => p.Seq), applied.Select(o => o.Op.Seq));
            var outcomes = await Task.WhenAll(ops.Select(p => p.Acked));
            Assert.Equal(applied.Select(o => o.Cursor), outcomes.Select(o => o.Cursor)); // the acks name the cursors B serves
        }
        Assert.True(cluster.Balancer.Connections >= 3, $"the clients reconnected after the kill ({cluster.Balancer.Connections} connections)");
    }
}
