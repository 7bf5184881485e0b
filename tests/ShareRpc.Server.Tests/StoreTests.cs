using Microsoft.Data.Sqlite;
using ShareRpc.Server.Storage.Sqlite;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class StoreTests
{
    [Fact]
    public async Task Reopening_the_store_keeps_the_log_the_dedupe_the_producers_and_the_key()
    {
        await using var f = new EngineFixture();
        var (created, _) = await f.CreateShareAsync("k");
        var owner = await f.RedeemAsync(created.SturdyRef);
        var batch = Batch("p", Put(1, "d", "a", "1"), AppendOp(2, "m", "hi"));
        var first = await f.Engine.AppendAsync(owner, batch);
        var redeemed = await f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });

        await f.ReopenAsync();

        // The old live ref is still valid (the key lives in the data dir), and the sturdy ref redeems.
        var stillValid = f.Engine.Authenticate("Bearer " + redeemed.LiveRef);
        var again = await f.Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        Assert.Equal((2UL, 1UL), (again.Cursor, again.Epoch));
        var resent = await f.Engine.AppendAsync(stillValid, batch);
        Assert.All(resent.Acks, a => Assert.Equal(OpStatus.Duplicate, a.Status));
        Assert.Equal(first.Acks.Select(a => a.Cursor), resent.Acks.Select(a => a.Cursor));
        var gap = await f.AppendAsync(stillValid, "p", Put(4, "d", "x", "1"));
        Assert.Equal(3UL, gap.ExpectedSeq);
        var next = await f.AppendAsync(stillValid, "p", Put(3, "d", "x", "1"));
        Assert.Equal(3UL, next.Acks[0].Cursor);
        var retry = await f.CreateShareAsync("k", SturdyRefSecret(created.SturdyRef));
        Assert.Equal((false, created.ShareId), (retry.Response.Created, retry.Response.ShareId));
    }

    private static byte[] SturdyRefSecret(string s) => Sharerpc.V1.SturdyRef.Parse(s).Secret;

    [Fact]
    public async Task The_database_is_wal_synchronous_full_and_versioned()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-store-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var store = SqliteShareStore.Open(dir))
            {
                Assert.Equal(Path.Combine(dir, SqliteShareStore.FileName), store.Path);
            }
            using (var c = new SqliteConnection($"Data Source={Path.Combine(dir, SqliteShareStore.FileName)};Pooling=False"))
            {
                c.Open();
                Assert.Equal("wal", Scalar(c, "PRAGMA journal_mode;"));
                Assert.Equal(SqliteSchema.CurrentVersion.ToString(), Scalar(c, "PRAGMA user_version;"));
                // A newer schema than this server knows is refused clearly.
                Scalar(c, "PRAGMA user_version = 99;");
            }
            var e = Assert.Throws<InvalidOperationException>(() => SqliteShareStore.Open(dir));
            Assert.Contains("newer", e.Message);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task The_writer_runs_synchronous_full()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-store-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using var store = SqliteShareStore.Open(dir);
            await using var tx = await store.BeginWriteAsync();
            Assert.Equal(2L, store.WriterPragma("synchronous")); // FULL
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(dir, true);
        }
    }

    private static string Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToString(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }
}
