using Google.Protobuf;
using Microsoft.Data.Sqlite;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

/// <summary>Issue 13, item 10: a damaged outbox is a clear error naming the file, never a silent fresh start or a hang.</summary>
public sealed class OutboxIntegrityTests : IDisposable
{
    private const string Share = "share-1";
    private const string Ref = "sharerpc://127.0.0.1:1/share-1/cap-1#c2VjcmV0";
    private readonly TempDir _dir = new("outbox-integrity-");

    public void Dispose() => _dir.Dispose();

    private static Op Put(string key, int valueBytes = 8) => new()
    {
        Put = new Put { Collection = "docs", Key = key, Value = ByteString.CopyFrom(new byte[valueBytes]) },
    };

    private static async Task<OutboxStore> WithOpsAsync(string path, int count, int valueBytes = 8)
    {
        var outbox = OutboxStore.Open(path, new OutboxOptions { FsyncEveryCommit = false });
        await outbox.EnsureProducerAsync(Share, Ref);
        for (var i = 0; i < count; i++)
        {
            await outbox.EnqueueAsync(Share, Put("k" + i, valueBytes));
        }

        return outbox;
    }

    /// <summary>Runs SQL on the file with a connection of its own (the store is closed), as a damaging hand would.</summary>
    private static void Tamper(string path, string sql)
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public async Task A_missing_file_is_a_fresh_outbox_but_an_empty_one_is_an_error_naming_it()
    {
        await using (var fresh = OutboxStore.Open(_dir.File("fresh.db")))
        {
            Assert.Empty(await fresh.GetProducersAsync());
        }

        var empty = _dir.File("empty.db");
        await File.WriteAllBytesAsync(empty, []);
        var ex = Assert.Throws<OutboxCorruptException>(() => OutboxStore.Open(empty));
        Assert.Equal(empty, ex.OutboxPath);
        Assert.Contains(empty, ex.Message);
        Assert.Contains("empty (0 bytes)", ex.Message);
        Assert.Equal(0, new FileInfo(empty).Length); // refused, not made into a fresh outbox
    }

    [Fact]
    public async Task A_copy_of_an_outbox_in_use_without_its_wal_is_an_error_but_a_cleanly_closed_one_copies_whole()
    {
        var path = _dir.File("live.db");
        var halfCopy = _dir.File("half-copy.db");
        await using (var live = await WithOpsAsync(path, 50))
        {
            // The ops are committed in the log (-wal); the main file alone is a half copy.
            File.Copy(path, halfCopy);
            Assert.False(File.Exists(halfCopy + "-wal"));
            var ex = Assert.Throws<OutboxCorruptException>(() => OutboxStore.Open(halfCopy));
            Assert.Contains(halfCopy, ex.Message);
            Assert.Contains("-wal is missing", ex.Message);
        }

        // Closed cleanly, the main file holds everything: a copy of it alone is a whole outbox.
        var wholeCopy = _dir.File("whole-copy.db");
        File.Copy(path, wholeCopy);
        await using var reopened = OutboxStore.Open(wholeCopy);
        Assert.Equal(50, (await reopened.GetStatusAsync(Share)).PendingOps);
    }

    [Fact]
    public async Task A_truncated_outbox_is_an_error_naming_it()
    {
        var path = _dir.File("truncated.db");
        await using (await WithOpsAsync(path, 200, valueBytes: 1024))
        {
        }

        var length = new FileInfo(path).Length;
        Assert.True(length > 100_000);
        using (var f = new FileStream(path, FileMode.Open))
        {
            f.SetLength(length / 2);
        }

        var ex = Assert.ThrowsAny<OutboxCorruptException>(() => OutboxStore.Open(path));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public async Task A_missing_op_row_is_an_error_naming_the_file_and_the_seq_not_a_batch_with_a_gap()
    {
        var path = _dir.File("missing-row.db");
        await using (await WithOpsAsync(path, 10))
        {
        }

        Tamper(path, "DELETE FROM ops WHERE seq = 5");
        await using var outbox = OutboxStore.Open(path);
        // The whole ops before the gap are sealed; the gap itself is damage, never skipped.
        var before = await outbox.SealNextBatchAsync(Share);
        Assert.Equal((1UL, 4UL), (before!.FirstSeq, before.LastSeq));
        var ex = await Assert.ThrowsAsync<OutboxCorruptException>(() => outbox.SealNextBatchAsync(Share));
        Assert.Contains(path, ex.Message);
        Assert.Contains("seq 5", ex.Message);
        Assert.Single(await outbox.GetUnackedBatchesAsync(Share)); // nothing was sealed across the gap
    }

    [Fact]
    public async Task A_missing_op_row_at_the_end_or_in_a_sealed_batch_is_an_error_too()
    {
        var path = _dir.File("missing-tail.db");
        await using (var outbox = await WithOpsAsync(path, 10))
        {
            await outbox.SealNextBatchAsync(Share);
        }

        // One row of the sealed batch and the next op, which is the last one, are lost.
        Tamper(path, "DELETE FROM ops WHERE seq = 3; INSERT INTO ops(share_id, seq, op_id, op, enqueued_at) VALUES ('share-1', 11, 'x', x'', 0); UPDATE producers SET next_seq = 13");
        await using var reopened = OutboxStore.Open(path);
        var resend = await Assert.ThrowsAsync<OutboxCorruptException>(() => reopened.GetUnackedBatchesAsync(Share));
        Assert.Contains("seq 3 is missing", resend.Message);
        var seal = await Assert.ThrowsAsync<OutboxCorruptException>(async () =>
        {
            while (await reopened.SealNextBatchAsync(Share) is not null)
            {
            }
        });
        Assert.Contains("seq 12", seal.Message);
    }

    [Fact]
    public async Task A_flipped_byte_in_an_op_row_fails_its_checksum_before_it_is_sealed_or_resent()
    {
        var path = _dir.File("flipped.db");
        await using (var outbox = await WithOpsAsync(path, 4, valueBytes: 64))
        {
            Assert.NotNull(await outbox.SealNextBatchAsync(Share));
            await outbox.EnqueueAsync(Share, Put("later", 64));
        }

        // A bit flipped inside a value: still a valid protobuf, so only the checksum can tell.
        Tamper(path, "UPDATE ops SET op = CAST(substr(op, 1, 20) || x'FF' || substr(op, 22) AS BLOB) WHERE seq IN (2, 5)");
        await using var reopened = OutboxStore.Open(path);
        var resend = await Assert.ThrowsAsync<OutboxCorruptException>(() => reopened.GetUnackedBatchesAsync(Share));
        Assert.Contains("seq 2 fails its checksum", resend.Message);
        var seal = await Assert.ThrowsAsync<OutboxCorruptException>(() => reopened.SealNextBatchAsync(Share));
        Assert.Contains("seq 5 fails its checksum", seal.Message);
        Assert.Contains(path, seal.Message);
    }

    [Fact]
    public async Task A_writer_on_a_damaged_outbox_stops_with_data_loss_naming_the_file_instead_of_hanging()
    {
        await using var server = await InProcessServer.StartAsync();
        var path = _dir.File("writer.db");
        string sturdy;
        await using (var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = path }))
        {
            sturdy = await client.EnsureShareAsync(server.Address, "session-damaged");
            var writer = client.OpenWriter(sturdy);
            await writer.PutAsync("c", "first", new byte[] { 1 });
            await writer.FlushAsync();
        }

        // Ops enqueued by a process that then lost one of them (a row deleted by hand).
        await using (var outbox = OutboxStore.Open(path))
        {
            var shareId = SturdyRef.Parse(sturdy).ShareId;
            for (var i = 0; i < 20; i++)
            {
                await outbox.EnqueueAsync(shareId, Put("k" + i));
            }
        }

        Tamper(path, "DELETE FROM ops WHERE seq = 7");
        await using var again = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = path });
        var resumed = Assert.Single(await again.ResumeAllAsync());
        var ex = await Assert.ThrowsAsync<ShareRpcCallException>(() => resumed.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(Grpc.Core.StatusCode.DataLoss, ex.StatusCode);
        Assert.Contains(path, ex.Message);
        Assert.Contains("seq 7", ex.Message);
        Assert.Equal(6UL, (await again.RedeemAsync(sturdy)).Cursor); // the ops before the hole went, none after it
    }

    [Fact]
    public async Task A_v1_outbox_is_migrated_in_place_and_its_pending_ops_are_sealed()
    {
        var path = _dir.File("v1.db");
        var op = Put("legacy");
        op.OpId = "0190d9a8-0000-7000-8000-000000000001";
        op.Seq = 1;
        Tamper(path, OutboxStore.V1 + $"""
            INSERT INTO producers(share_id, producer_id, sturdy_ref, next_seq, sealed_seq, acked_seq, rejected) VALUES ('{Share}', 'p-1', '{Ref}', 2, 0, 0, 0);
            INSERT INTO ops(share_id, seq, op_id, op, enqueued_at) VALUES ('{Share}', 1, '{op.OpId}', x'{Convert.ToHexString(op.ToByteArray())}', 0);
            """);

        await using var outbox = OutboxStore.Open(path);
        var batch = await outbox.SealNextBatchAsync(Share);
        Assert.Equal(op.OpId, Assert.Single(batch!.Parse().Ops).OpId);
        using var cmd = outbox.Connection.CreateCommand();
        cmd.CommandText = "PRAGMA user_version";
        Assert.Equal(2L, cmd.ExecuteScalar());
    }
}
