using Npgsql;

namespace ShareRpc.Server.Postgres.Internal;

/// <summary>
/// The schema, versioned in <c>&lt;schema&gt;.schema_version</c> and migrated on open inside one
/// transaction that first takes <c>pg_advisory_xact_lock</c>, so servers starting together on an
/// empty database do not race (PostgreSQL DDL is transactional: a failed step leaves nothing).
/// Same logical tables as the SQLite store. The log's key is (share, cursor): the "log row id"
/// a document points at is the cursor of its log row, so ids are known before any round trip.
/// Text that is compared or ordered uses COLLATE "C" (byte order, as SQLite's BINARY).
/// </summary>
internal static class PgSchema
{
    /// <summary>Migrations[i] moves version i → i + 1; "{s}" is the schema name.</summary>
    internal static readonly string[] Migrations =
    [
        """
        CREATE TABLE {s}.shares(
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            share_id text COLLATE "C" NOT NULL UNIQUE,
            share_key text COLLATE "C" NOT NULL UNIQUE,
            title text NOT NULL,
            labels jsonb NOT NULL,
            epoch bigint NOT NULL,
            cursor bigint NOT NULL,
            created_at timestamptz NOT NULL);
        CREATE TABLE {s}.capabilities(
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            capability_id text COLLATE "C" NOT NULL UNIQUE,
            share bigint NOT NULL REFERENCES {s}.shares(id),
            parent bigint NULL REFERENCES {s}.capabilities(id),
            secret_hash bytea NOT NULL,
            rights integer NOT NULL,
            expires_at timestamptz NULL,
            revoked_at timestamptz NULL,
            note text NOT NULL,
            created_at timestamptz NOT NULL,
            CONSTRAINT capabilities_secret UNIQUE (share, secret_hash));
        CREATE TABLE {s}.producers(
            share bigint NOT NULL,
            producer_id text COLLATE "C" NOT NULL,
            last_seq bigint NOT NULL,
            PRIMARY KEY (share, producer_id));
        CREATE TABLE {s}.log(
            share bigint NOT NULL,
            cursor bigint NOT NULL,
            op_id text COLLATE "C" NOT NULL,
            producer_id text NOT NULL,
            seq bigint NOT NULL,
            kind smallint NOT NULL,
            collection text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            value bytea NULL,
            content_type text NOT NULL,
            expected_version bigint NULL,
            depends_on text NULL,
            version bigint NOT NULL,
            committed_at timestamptz NOT NULL,
            CONSTRAINT log_cursor PRIMARY KEY (share, cursor),
            CONSTRAINT log_op UNIQUE (share, op_id));
        CREATE TABLE {s}.rejections(
            share bigint NOT NULL,
            op_id text COLLATE "C" NOT NULL,
            reason integer NOT NULL,
            detail text NOT NULL,
            PRIMARY KEY (share, op_id));
        CREATE TABLE {s}.documents(
            share bigint NOT NULL,
            collection text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            version bigint NOT NULL,
            cursor bigint NOT NULL,
            log_cursor bigint NOT NULL,
            deleted boolean NOT NULL,
            PRIMARY KEY (share, collection, key));
        """,
        // v2: a producer's sequence belongs to the capability that writes it (issue 13, item 4).
        // Rows from v1 keep capability NULL: the next capability to write under the id claims it.
        """
        ALTER TABLE {s}.producers ADD COLUMN capability bigint NULL;
        """,
    ];

    internal static int CurrentVersion => Migrations.Length;

    /// <summary>The advisory lock key of one schema's migrations (any bigint works; this one is stable).</summary>
    internal static long LockKey(string schema)
    {
        // FNV-1a over "sharerpc.migrate:" + schema: stable across processes and .NET versions.
        ulong h = 14695981039346656037;
        foreach (var ch in "sharerpc.migrate:" + schema)
        {
            h ^= ch;
            h *= 1099511628211;
        }
        return unchecked((long)h);
    }

    /// <summary>Creates or migrates the schema; refuses a version newer than this code knows.</summary>
    internal static async Task<int> MigrateAsync(NpgsqlConnection connection, string schema, CancellationToken ct)
    {
        var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        await Exec(connection, tx, "SELECT pg_advisory_xact_lock($1)", ct, LockKey(schema)).ConfigureAwait(false);
        // DDL only when something is missing: an up-to-date schema opens without CREATE privileges.
        if (!await ExistsAsync(connection, tx, "SELECT 1 FROM pg_namespace WHERE nspname = $1", schema, ct).ConfigureAwait(false))
            await Exec(connection, tx, $"CREATE SCHEMA {schema}", ct).ConfigureAwait(false);
        if (!await ExistsAsync(connection, tx, "SELECT 1 WHERE to_regclass($1) IS NOT NULL", schema + ".schema_version", ct).ConfigureAwait(false))
        {
            await Exec(connection, tx,
                $"CREATE TABLE {schema}.schema_version(one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)", ct)
                .ConfigureAwait(false);
        }
        int version;
        var cmd = new NpgsqlCommand($"SELECT version FROM {schema}.schema_version", connection, tx);
        await using (cmd.ConfigureAwait(false))
            version = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is int v ? v : 0;
        if (version > CurrentVersion)
            throw new InvalidOperationException(
                $"The database schema '{schema}' is at version {version}, newer than this server understands ({CurrentVersion}); upgrade the server.");
        for (var v = version; v < CurrentVersion; v++)
            await Exec(connection, tx, Migrations[v].Replace("{s}", schema, StringComparison.Ordinal), ct).ConfigureAwait(false);
        if (version != CurrentVersion)
        {
            await Exec(connection, tx,
                $"INSERT INTO {schema}.schema_version(one, version) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                ct, CurrentVersion).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return CurrentVersion;
    }

    private static async Task<bool> ExistsAsync(NpgsqlConnection c, NpgsqlTransaction tx, string sql, string arg, CancellationToken ct)
    {
        var cmd = new NpgsqlCommand(sql, c, tx);
        await using var cmdScope = cmd.ConfigureAwait(false);
        cmd.Parameters.Add(new NpgsqlParameter { Value = arg });
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null;
    }

    private static async Task Exec(NpgsqlConnection c, NpgsqlTransaction tx, string sql, CancellationToken ct, params object[] args)
    {
        var cmd = new NpgsqlCommand(sql, c, tx);
        await using var cmdScope = cmd.ConfigureAwait(false);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }
}
