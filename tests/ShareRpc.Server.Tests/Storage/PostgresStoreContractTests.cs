using Npgsql;
using ShareRpc.Server.Postgres;
using ShareRpc.Server.Storage;
using Xunit.Abstractions;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>The store contract on PostgreSQL (a brand-new database per test).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresStoreContractTests(PostgresFixture pg, ITestOutputHelper output) : StoreContractTests(output)
{
    private string _cs = "";

    protected override async Task PrepareAsync() => _cs = await pg.Server.CreateDatabaseAsync("contract");

    private protected override async Task<IShareStore> OpenStoreAsync() => await PostgresShareStore.OpenAsync(new PostgresStoreOptions { ConnectionString = _cs });

    protected override int CurrentSchemaVersion => PostgresShareStore.SchemaVersion;

    protected override async Task SetSchemaVersionAsync(int version)
    {
        await using var c = new NpgsqlConnection(_cs);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("UPDATE sharerpc.schema_version SET version = $1", c) { Parameters = { new() { Value = version } } };
        Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
    }

    protected override async Task<int> GetSchemaVersionAsync()
    {
        await using var c = new NpgsqlConnection(_cs);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT version FROM sharerpc.schema_version", c);
        return (int)(await cmd.ExecuteScalarAsync())!;
    }

    protected override Task CleanupAsync() => pg.Server.DropDatabaseAsync(_cs);
}
