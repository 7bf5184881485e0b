using Microsoft.Data.Sqlite;

namespace ShareRpc.Server.Storage.Sqlite;

/// <summary>
/// The schema, versioned with PRAGMA user_version and migrated on open (each step in its own
/// transaction). Rows carrying values (log) are rowid tables; small keyed rows are WITHOUT ROWID.
/// A document points at its log row instead of copying the value.
/// </summary>
internal static class SqliteSchema
{
    /// <summary>Migrations[i] moves user_version i → i + 1.</summary>
    internal static readonly string[] Migrations =
    [
        """
        CREATE TABLE shares(
            id INTEGER PRIMARY KEY,
            share_id TEXT NOT NULL UNIQUE,
            share_key TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            labels TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            cursor INTEGER NOT NULL,
            created_at INTEGER NOT NULL);
        CREATE TABLE capabilities(
            id INTEGER PRIMARY KEY,
            capability_id TEXT NOT NULL UNIQUE,
            share INTEGER NOT NULL REFERENCES shares(id),
            parent INTEGER NULL REFERENCES capabilities(id),
            secret_hash BLOB NOT NULL,
            rights INTEGER NOT NULL,
            expires_at INTEGER NULL,
            revoked_at INTEGER NULL,
            note TEXT NOT NULL,
            created_at INTEGER NOT NULL);
        CREATE UNIQUE INDEX capabilities_secret ON capabilities(share, secret_hash);
        CREATE INDEX capabilities_share ON capabilities(share);
        CREATE TABLE producers(
            share INTEGER NOT NULL,
            producer_id TEXT NOT NULL,
            last_seq INTEGER NOT NULL,
            PRIMARY KEY(share, producer_id)) WITHOUT ROWID;
        CREATE TABLE log(
            id INTEGER PRIMARY KEY,
            share INTEGER NOT NULL,
            cursor INTEGER NOT NULL,
            op_id TEXT NOT NULL,
            producer_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NULL,
            content_type TEXT NOT NULL,
            expected_version INTEGER NULL,
            depends_on TEXT NULL,
            version INTEGER NOT NULL,
            committed_at INTEGER NOT NULL);
        CREATE UNIQUE INDEX log_cursor ON log(share, cursor);
        CREATE UNIQUE INDEX log_op ON log(share, op_id);
        CREATE TABLE rejections(
            share INTEGER NOT NULL,
            op_id TEXT NOT NULL,
            reason INTEGER NOT NULL,
            detail TEXT NOT NULL,
            PRIMARY KEY(share, op_id)) WITHOUT ROWID;
        CREATE TABLE documents(
            share INTEGER NOT NULL,
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            version INTEGER NOT NULL,
            cursor INTEGER NOT NULL,
            log_id INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            PRIMARY KEY(share, collection, key)) WITHOUT ROWID;
        """,
        // v2: a producer's sequence belongs to the capability that writes it (issue 13, item 4).
        // Rows from v1 keep capability NULL: the next capability to write under the id claims it.
        """
        ALTER TABLE producers ADD COLUMN capability INTEGER NULL;
        """,
    ];

    internal static int CurrentVersion => Migrations.Length;

    internal static void Migrate(SqliteConnection connection)
    {
        var version = ReadVersion(connection);
        if (version > CurrentVersion)
            throw new InvalidOperationException(
                $"The database schema version {version} is newer than this server understands ({CurrentVersion}); upgrade the server.");
        for (var v = version; v < CurrentVersion; v++)
        {
            using var tx = connection.BeginTransaction();
            using (var cmd = connection.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = Migrations[v];
                cmd.ExecuteNonQuery();
                cmd.CommandText = $"PRAGMA user_version = {v + 1};";
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
    }

    internal static int ReadVersion(SqliteConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA user_version;";
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
