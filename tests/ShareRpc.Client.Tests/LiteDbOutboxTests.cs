using LiteDB;
using LiteDB.Engine;
using ShareRpc.Client.LiteDb;
using ShareRpc.Client.Outbox;
using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>
/// What is particular to the LiteDB outbox (docs/client.md, "Outbox stores"): its commits fsync before an enqueue
/// returns, one process per file, encrypted files and passwords refused, damage found and named, and a file of
/// the other engine refused in one line. The contract itself is in <see cref="OutboxContractTests"/>.
/// </summary>
public sealed class LiteDbOutboxTests : IDisposable
{
    private const string Share = OutboxContractTests.Share;
    private const string Ref = OutboxContractTests.Ref;
    private static readonly LiteDbOutboxEngine s_engine = new() { LockWait = TimeSpan.FromMilliseconds(200) };
    private readonly TempDir _dir = new("outbox-litedb-");

    public void Dispose() => _dir.Dispose();

    private static async Task<LiteDbOutboxStore> WithOpsAsync(string path, int count, bool fsync = true)
    {
        var outbox = (LiteDbOutboxStore)s_engine.Open(path, new OutboxOptions { FsyncEveryCommit = fsync });
        await outbox.EnsureProducerAsync(Share, Ref);
        for (var i = 0; i < count; i++)
        {
            await outbox.EnqueueAsync(Share, OutboxContractTests.Put("k" + i));
        }

        return outbox;
    }

    /// <summary>Changes the closed file with LiteDB itself (its own log, no fsync), as a damaging hand would.</summary>
    private static void Tamper(string path, Action<LiteDatabase> change)
    {
        using var db = new LiteDatabase(new LiteEngine(new EngineSettings { Filename = path, Collation = Collation.Binary }));
        change(db);
    }

    [Fact]
    public async Task Every_enqueue_fsyncs_the_log_before_it_returns_and_none_without_FsyncEveryCommit()
    {
        await using (var outbox = await WithOpsAsync(_dir.File("durable.db"), 0))
        {
            for (var i = 0; i < 5; i++)
            {
                var before = outbox.LogFsyncs;
                await outbox.EnqueueAsync(Share, OutboxContractTests.Put("k" + i));
                Assert.InRange(outbox.LogFsyncs - before, 1, 2); // the commit's pages, then the page that confirms them
            }
        }

        await using var fast = await WithOpsAsync(_dir.File("fast.db"), 5, fsync: false);
        Assert.Equal(0, fast.LogFsyncs);
    }

    [Fact]
    public async Task One_process_per_file_a_second_open_waits_then_is_refused_and_gets_the_file_once_it_is_closed()
    {
        var path = _dir.File("locked.db");
        var first = await WithOpsAsync(path, 3);
        var ex = Assert.Throws<OutboxInUseException>(() => s_engine.Open(path));
        Assert.Equal(path, ex.OutboxPath);
        var waiter = Task.Run(() => new LiteDbOutboxEngine { LockWait = TimeSpan.FromSeconds(30) }.Open(path));
        await first.DisposeAsync();
        var second = await waiter;
        Assert.Equal(4UL, (await second.GetProducersAsync()).Single().NextSeq);
        await second.DisposeAsync();
        Assert.False(File.Exists(LiteDbOutboxStore.LogPathOf(path))); // closed cleanly: the log was checkpointed and removed
    }

    [Fact]
    public async Task A_missing_file_is_a_fresh_outbox_but_an_empty_or_encrypted_one_or_a_password_is_refused()
    {
        await using (var fresh = s_engine.Open(_dir.File("fresh.db")))
        {
            Assert.Empty(await fresh.GetProducersAsync());
        }

        var empty = _dir.File("empty.db");
        await File.WriteAllBytesAsync(empty, []);
        Assert.Contains("empty (0 bytes)", Assert.Throws<OutboxCorruptException>(() => s_engine.Open(empty)).Message);
        Assert.Equal(0, new FileInfo(empty).Length);

        var encrypted = _dir.File("encrypted.db");
        using (var db = new LiteDatabase($"Filename={encrypted};Password=secret"))
        {
            db.GetCollection("x").Insert(new BsonDocument { ["_id"] = 1 });
        }

        Assert.Contains("password-protected", Assert.Throws<OutboxCorruptException>(() => s_engine.Open(encrypted)).Message);
        var password = Assert.Throws<ArgumentException>(() => s_engine.Open($"Filename={_dir.File("p.db")};Password=secret"));
        Assert.Contains("never fsyncs", password.Message);
    }

    [Fact]
    public async Task A_file_of_the_other_engine_is_refused_in_one_line_naming_it()
    {
        var sqlite = _dir.File("sqlite.db");
        await (await WithSqliteAsync(sqlite)).DisposeAsync();
        var asLite = Assert.Throws<IOException>(() => s_engine.Open(sqlite));
        Assert.Contains("is a sqlite outbox, not a litedb one", asLite.Message);
        Assert.DoesNotContain('\n', asLite.Message);

        var lite = _dir.File("lite.db");
        await (await WithOpsAsync(lite, 1)).DisposeAsync();
        Assert.Contains("is a litedb outbox, not a sqlite one", Assert.Throws<IOException>(() => OutboxEngine.Sqlite.Open(lite)).Message);
    }

    private static async Task<IOutboxStore> WithSqliteAsync(string path)
    {
        var store = OutboxEngine.Sqlite.Open(path);
        await store.EnsureProducerAsync(Share, Ref);
        return store;
    }

    [Fact]
    public async Task Changed_op_bytes_and_a_missing_op_row_are_damage_naming_the_file_and_nothing_is_sealed()
    {
        var changed = _dir.File("changed.db");
        await (await WithOpsAsync(changed, 3)).DisposeAsync();
        Tamper(changed, db =>
        {
            var ops = db.GetCollection("ops");
            var row = ops.FindAll().Single(d => d["seq"].AsInt64 == 2);
            row["op"].AsBinary[^1] ^= 0xFF;
            ops.Update(row);
        });
        await using (var outbox = s_engine.Open(changed))
        {
            var ex = await Assert.ThrowsAsync<OutboxCorruptException>(() => outbox.SealNextBatchAsync(Share));
            Assert.Contains("seq 2 fails its checksum", ex.Message);
            Assert.Equal(changed, ex.OutboxPath);
            Assert.Empty(await outbox.GetUnackedBatchesAsync(Share));
        }

        var missing = _dir.File("missing.db");
        await (await WithOpsAsync(missing, 3)).DisposeAsync();
        Tamper(missing, db => db.GetCollection("ops").DeleteMany(Query.EQ("seq", 1L)));
        await using var damaged = s_engine.Open(missing);
        Assert.Contains("seq 1 of share share-1 is missing", (await Assert.ThrowsAsync<OutboxCorruptException>(() => damaged.SealNextBatchAsync(Share))).Message);
    }

    [Fact]
    public async Task A_copy_of_the_data_file_without_its_log_after_an_unclean_close_is_refused()
    {
        var path = _dir.File("live.db");
        await using var live = await WithOpsAsync(path, 3);
        // Copied while in use: the data file says so, and the commits since its last checkpoint are in the log only.
        var copy = _dir.File("copy.db");
        File.Copy(path, copy);
        var ex = Assert.Throws<OutboxCorruptException>(() => s_engine.Open(copy));
        Assert.Contains("not closed cleanly and its log", ex.Message);

        var whole = _dir.File("whole.db");
        File.Copy(path, whole);
        File.Copy(LiteDbOutboxStore.LogPathOf(path), LiteDbOutboxStore.LogPathOf(whole));
        await using var reopened = s_engine.Open(whole);
        Assert.Equal(4UL, (await reopened.GetProducersAsync()).Single().NextSeq);
    }
}

/// <summary>An engine by the name the CLI's --outbox-engine takes, for tests that run on both.</summary>
internal static class TestEngines
{
    public static OutboxEngine ByName(string name) => name == "litedb" ? new LiteDbOutboxEngine() : OutboxEngine.Sqlite;
}
