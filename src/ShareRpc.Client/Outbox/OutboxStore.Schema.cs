// OutboxStore: the SQLite schema and its migrations.
using Microsoft.Data.Sqlite;

namespace ShareRpc.Client.Outbox;

internal sealed partial class OutboxStore
{
    private static void Migrate(SqliteConnection db)
    {
        // BEGIN IMMEDIATE first: two processes opening a new file at once must not both create it.
        using var tx = db.BeginTransaction(deferred: false);
        using var get = db.CreateCommand();
        get.Transaction = tx;
        get.CommandText = "PRAGMA user_version;";
        var version = Convert.ToInt32(get.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (version > SchemaVersion)
        {
            throw new InvalidOperationException($"Outbox schema {version} is newer than this build understands ({SchemaVersion}).");
        }

        if (version < 1)
        {
            using var cmd = db.CreateCommand();
            cmd.Transaction = tx;
            // Rowid tables throughout: op rows carry KiB payloads (SQLite advises against
            // WITHOUT ROWID for large rows).
            cmd.CommandText = """
                CREATE TABLE producers(
                  share_id TEXT PRIMARY KEY,
                  producer_id TEXT NOT NULL,
                  sturdy_ref TEXT NOT NULL,
                  next_seq INTEGER NOT NULL,
                  sealed_seq INTEGER NOT NULL,
                  acked_seq INTEGER NOT NULL,
                  rejected INTEGER NOT NULL,
                  stopped_reason TEXT);
                -- An op row is written once and never updated: its place (pending, sealed,
                -- acked) follows from the producer's sealed/acked seqs and the batch seq ranges.
                CREATE TABLE ops(
                  id INTEGER PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  seq INTEGER NOT NULL,
                  op_id TEXT NOT NULL UNIQUE,
                  op BLOB NOT NULL,
                  enqueued_at INTEGER NOT NULL,
                  UNIQUE(share_id, seq));
                CREATE TABLE batches(
                  batch_id TEXT PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  first_seq INTEGER NOT NULL,
                  last_seq INTEGER NOT NULL,
                  op_count INTEGER NOT NULL,
                  state INTEGER NOT NULL,
                  sealed_at INTEGER NOT NULL,
                  acked_at INTEGER,
                  response BLOB);
                CREATE INDEX batches_by_state ON batches(share_id, state, first_seq);
                CREATE TABLE rejections(
                  op_id TEXT PRIMARY KEY,
                  share_id TEXT NOT NULL,
                  seq INTEGER NOT NULL,
                  reason INTEGER NOT NULL,
                  detail TEXT NOT NULL,
                  acked_at INTEGER NOT NULL);
                CREATE TABLE share_intents(
                  share_key TEXT NOT NULL,
                  server TEXT NOT NULL,
                  owner_secret BLOB NOT NULL,
                  title TEXT NOT NULL,
                  share_id TEXT,
                  sturdy_ref TEXT,
                  state INTEGER NOT NULL,
                  created_at INTEGER NOT NULL,
                  PRIMARY KEY(server, share_key));
                PRAGMA user_version = 1;
                """;
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
    }
}
