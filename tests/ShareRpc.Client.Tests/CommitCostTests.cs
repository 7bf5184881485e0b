using Microsoft.Data.Sqlite;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 14: seal and ack records are committed without an fsync of their own (docs/client.md,
/// "What each commit costs"). They survive a process crash as before; after a power loss they may
/// be gone while the ops before them stay, and then the sender does the work again.
/// </summary>
public sealed class CommitCostTests : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);
    private readonly TempDir _dir = new("commit-cost-");
    private InProcessServer _server = null!;

    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync(dataDirectory: _dir.File("server"));

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Seals_and_acks_lost_with_power_are_done_again_and_nothing_is_applied_twice()
    {
        var path = _dir.File("outbox.db");
        string sturdy;
        List<PendingOp> first;
        OpOutcome[] applied;
        await using (var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = path }))
        {
            sturdy = await client.EnsureShareAsync(_server.Address, "power");
            var writer = client.OpenWriter(sturdy);
            first = [];
            for (var i = 0; i < 30; i++) first.Add(await writer.PutAsync("c", "k" + i, new byte[] { (byte)i }));
            await writer.FlushAsync().WaitAsync(s_patience);
            applied = await Task.WhenAll(first.Select(p => p.Acked));
            Assert.All(applied, a => Assert.Equal(OpStatus.Applied, a.Status));
        }

        // What a power loss may leave: every op (their commits were fsynced) and none of the seal
        // and ack records written after them (the WAL keeps a prefix of its commits).
        using (var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "DELETE FROM batches; UPDATE producers SET sealed_seq = 0, wire_sealed_seq = 0, acked_seq = 0;";
            cmd.ExecuteNonQuery();
        }

        await using (var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = path }))
        {
            var writer = client.OpenWriter(sturdy);
            await writer.FlushAsync().WaitAsync(s_patience);
            var status = await client.Outbox.GetStatusAsync(writer.ShareId);
            Assert.Equal(0, status.PendingOps);
            for (var i = 0; i < first.Count; i++)
            {
                // Sealed again under a new batch id, sent again, and recognized by its op id.
                var outcome = await client.Outbox.GetOutcomeAsync(first[i].OpId);
                Assert.NotNull(outcome);
                Assert.Equal(OpStatus.Duplicate, outcome.Status);
                Assert.Equal(applied[i].Cursor, outcome.Cursor);
            }

            var log = await ProcessTests.ReadLogAsync(client, sturdy);
            Assert.Equal(first.Select(p => p.OpId), log.Select(l => l.Op.OpId));
        }
    }

    [Fact]
    public async Task After_a_seal_or_an_ack_op_commits_fsync_again()
    {
        const string Share = "share-1";
        await using var outbox = OutboxStore.Open(_dir.File("sync.db"));
        await outbox.EnsureProducerAsync(Share, "sharerpc://127.0.0.1:1/share-1/cap-1#c2VjcmV0");
        await outbox.EnqueueAsync(Share, new Op { Put = new Put { Collection = "c", Key = "k" } });
        Assert.Equal(2L, Synchronous(outbox)); // FULL: an op is durable when Enqueue returns

        var batch = await outbox.SealNextBatchAsync(Share);
        Assert.NotNull(batch);
        Assert.Equal(2L, Synchronous(outbox));

        var request = batch.Parse();
        var response = new AppendOpsResponse { BatchId = batch.BatchId, BatchStatus = BatchStatus.Accepted, Cursor = 1 };
        response.Acks.Add(new OpAck { OpId = request.Ops[0].OpId, Status = OpStatus.Applied, Cursor = 1, Version = 1 });
        await outbox.RecordAckAsync(Share, response);
        Assert.Equal(2L, Synchronous(outbox));
        Assert.Equal(0, (await outbox.GetStatusAsync(Share)).PendingOps);

        await using var relaxed = OutboxStore.Open(_dir.File("normal.db"), new OutboxOptions { FsyncEveryCommit = false });
        await relaxed.EnsureProducerAsync(Share, "sharerpc://127.0.0.1:1/share-1/cap-1#c2VjcmV0");
        await relaxed.EnqueueAsync(Share, new Op { Put = new Put { Collection = "c", Key = "k" } });
        Assert.NotNull(await relaxed.SealNextBatchAsync(Share));
        Assert.Equal(1L, Synchronous(relaxed)); // NORMAL stays NORMAL
    }

    private static long Synchronous(OutboxStore outbox)
    {
        using var cmd = outbox.Connection.CreateCommand();
        cmd.CommandText = "PRAGMA synchronous;";
        return (long)cmd.ExecuteScalar()!;
    }
}
