using Microsoft.Data.Sqlite;
using ShareRpc.Server.Storage;
using ShareRpc.Server.Storage.Sqlite;
using Xunit.Abstractions;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>The store contract on the embedded SQLite store (a fresh directory per test).</summary>
public sealed class SqliteStoreContractTests(ITestOutputHelper output) : StoreContractTests(output)
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharerpc-contract-" + Guid.NewGuid().ToString("N"));

    private protected override Task<IShareStore> OpenStoreAsync() => Task.FromResult<IShareStore>(SqliteShareStore.Open(_dir, fsyncEveryCommit: true));

    protected override int CurrentSchemaVersion => SqliteSchema.CurrentVersion;

    private string Db => Path.Combine(_dir, SqliteShareStore.FileName);

    protected override Task SetSchemaVersionAsync(int version)
    {
        using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"PRAGMA user_version = {version};";
        cmd.ExecuteNonQuery();
        return Task.CompletedTask;
    }

    protected override Task<int> GetSchemaVersionAsync()
    {
        using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        return Task.FromResult(SqliteSchema.ReadVersion(c));
    }

    protected override Task CleanupAsync()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
        return Task.CompletedTask;
    }
}
