using System.Globalization;
using Npgsql;

namespace ShareRpc.Chaos.Postgres;

/// <summary>
/// What the harness does on a PostgreSQL server besides running ShareRpc on it: a schema per scenario
/// (dropped after), a database per crash loop (dropped after), and the names it gives them, so a long
/// soak leaves nothing behind and a leftover is recognisable.
/// </summary>
public static class ChaosPostgres
{
    /// <summary>Prefix of every schema a scenario makes (<c>chaos_SEED_RANDOM</c>).</summary>
    public const string SchemaPrefix = "chaos_";

    /// <summary>Prefix of every database a crash loop makes (<c>sharerpc_crash_SEED_RANDOM</c>).</summary>
    public const string DatabasePrefix = "sharerpc_crash_";

    /// <summary>A fresh schema name for <paramref name="seed"/>, valid for <c>PostgresStoreOptions.Schema</c>.</summary>
    public static string SchemaName(int seed) => SchemaPrefix + Tag(seed);

    /// <summary>Drops <paramref name="schema"/> and everything in it (<c>DROP SCHEMA … CASCADE</c>); nothing if it is not there.</summary>
    public static async Task DropSchemaAsync(string connectionString, string schema, CancellationToken ct = default)
    {
        var c = await OpenAsync(connectionString, ct).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var cmd = new NpgsqlCommand($"DROP SCHEMA IF EXISTS {Quote(schema)} CASCADE", c);
        await using var cmdScope = cmd.ConfigureAwait(false);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Schemas in the connection string's database whose names start with <paramref name="prefix"/>.</summary>
    public static async Task<IReadOnlyList<string>> ListSchemasAsync(string connectionString, string prefix = SchemaPrefix, CancellationToken ct = default)
    {
        var c = await OpenAsync(connectionString, ct).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var cmd = new NpgsqlCommand("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY nspname", c);
        await using var cmdScope = cmd.ConfigureAwait(false);
        cmd.Parameters.Add(new NpgsqlParameter { Value = prefix });
        return await ReadNamesAsync(cmd, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates a brand-new database for a crash loop of <paramref name="seed"/> on the server of
    /// <paramref name="connectionString"/> (its user needs CREATEDB) and returns a connection string to it.
    /// </summary>
    public static async Task<string> CreateDatabaseAsync(string connectionString, int seed, CancellationToken ct = default)
    {
        var name = DatabasePrefix + Tag(seed);
        var c = await OpenAsync(connectionString, ct).ConfigureAwait(false);
        await using (c.ConfigureAwait(false))
        {
            var cmd = new NpgsqlCommand($"CREATE DATABASE {Quote(name)}", c);
            await using var cmdScope = cmd.ConfigureAwait(false);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        return new NpgsqlConnectionStringBuilder(connectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Drops the database of <paramref name="databaseConnectionString"/> (made by <see cref="CreateDatabaseAsync"/>), ending its open connections.</summary>
    public static async Task DropDatabaseAsync(string connectionString, string databaseConnectionString, CancellationToken ct = default)
    {
        var name = new NpgsqlConnectionStringBuilder(databaseConnectionString).Database;
        if (string.IsNullOrEmpty(name) || !name.StartsWith(DatabasePrefix, StringComparison.Ordinal))
        {
            throw new ArgumentException("not a crash-loop database: " + name, nameof(databaseConnectionString));
        }

        var c = await OpenAsync(connectionString, ct).ConfigureAwait(false);

        await using var cScope = c.ConfigureAwait(false);
        var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Quote(name)} WITH (FORCE)", c);
        await using var cmdScope = cmd.ConfigureAwait(false);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Databases on the server whose names start with <paramref name="prefix"/>.</summary>
    public static async Task<IReadOnlyList<string>> ListDatabasesAsync(string connectionString, string prefix = DatabasePrefix, CancellationToken ct = default)
    {
        var c = await OpenAsync(connectionString, ct).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var cmd = new NpgsqlCommand("SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname", c);
        await using var cmdScope = cmd.ConfigureAwait(false);
        cmd.Parameters.Add(new NpgsqlParameter { Value = prefix });
        return await ReadNamesAsync(cmd, ct).ConfigureAwait(false);
    }

    /// <summary>Host, port and database of a connection string (never its password), for output.</summary>
    public static string Describe(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return string.Create(CultureInfo.InvariantCulture, $"{b.Host}:{b.Port}/{b.Database ?? b.Username}");
    }

    /// <summary>
    /// An admin connection, unpooled: the harness opens one per scenario end, and a pool of idle
    /// connections per connection string would only hold server slots the scenarios' stores need.
    /// </summary>
    private static async Task<NpgsqlConnection> OpenAsync(string connectionString, CancellationToken ct)
    {
        var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, ApplicationName = "sharerpc-chaos" }.ConnectionString);
        try
        {
            await c.OpenAsync(ct).ConfigureAwait(false);
            return c;
        }
        catch
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<IReadOnlyList<string>> ReadNamesAsync(NpgsqlCommand cmd, CancellationToken ct)
    {
        var names = new List<string>();
        var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            names.Add(r.GetString(0));
        }

        return names;
    }

    /// <summary>SEED_RANDOM: lowercase letters, digits and '_' only (a negative seed gets 'm').</summary>
    private static string Tag(int seed) =>
        seed.ToString(CultureInfo.InvariantCulture).Replace('-', 'm') + "_" + Guid.NewGuid().ToString("N")[..8];

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
