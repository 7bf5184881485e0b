using ShareRpc.TestSupport;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>One PostgreSQL server for every test of the "postgres" collection (a throwaway cluster unless SHARERPC_TEST_PG is set).</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public PostgresTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresTestServer.SharedAsync();

    public Task DisposeAsync() => Task.CompletedTask; // stopped at process exit (the server is shared by the process)
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
