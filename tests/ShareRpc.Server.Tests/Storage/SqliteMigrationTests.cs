using Microsoft.Data.Sqlite;
using ShareRpc.Server.Storage.Sqlite;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>Schema v2 (a producer belongs to a capability) on a database made by v1.</summary>
public sealed class SqliteMigrationTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharerpc-migrate-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private void Sql(string sql)
    {
        using var c = new SqliteConnection($"Data Source={Path.Combine(_dir, SqliteShareStore.FileName)};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public async Task A_v1_database_migrates_and_its_producers_are_claimed_by_the_next_capability_that_writes()
    {
        Directory.CreateDirectory(_dir);
        Sql(SqliteSchema.Migrations[0] + "PRAGMA user_version = 1;"); // what a v1 server made
        await using var f = new EngineFixture(dir: _dir);
        using (var c = new SqliteConnection($"Data Source={Path.Combine(_dir, SqliteShareStore.FileName)};Pooling=False"))
        {
            c.Open();
            Assert.Equal(2, SqliteSchema.ReadVersion(c)); // migrated on open
        }

        var (owner, _) = await f.NewShareAsync();
        await f.AppendAsync(owner, "legacy", Put(1, "d", "a", "1"));
        Sql("UPDATE producers SET capability = NULL;"); // as a v1 row reads after the migration
        var delegated = await f.Engine.DelegateAsync(owner, new DelegateCapabilityRequest
        {
            Rights = { Right.Append },
            Secret = Google.Protobuf.ByteString.CopyFrom(NewSecret()),
        }, Endpoint);
        var other = await f.RedeemAsync(delegated.SturdyRef);

        // Unowned: the first capability to write claims it; then it is that capability's alone.
        Assert.Equal(OpStatus.Applied, (await f.AppendAsync(owner, "legacy", Put(2, "d", "b", "1"))).Acks[0].Status);
        await Expect.Fails(() => f.AppendAsync(other, "legacy", Put(3, "d", "c", "1")), ShareRpcStatus.PermissionDenied, Reasons.ProducerTaken);
    }
}
