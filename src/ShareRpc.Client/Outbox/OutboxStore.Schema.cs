// OutboxStore: the SQLite schema and its migrations.
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace ShareRpc.Client.Outbox;

internal sealed partial class OutboxStore
{
    // 1: producers, ops, batches, rejections, share intents.
    // 2: a checksum per op row, wire seqs (ops set aside leave holes in the outbox's seqs, not on the
    //    wire), the set_aside table of poison ops, the in-use mark.
    private const int SchemaVersion = 2;

    private static void Migrate(SqliteConnection db)
    {
        // BEGIN IMMEDIATE first: two processes opening a new file at once must not both create it.
        using var tx = db.BeginTransaction(deferred: false);
        using var get = db.CreateCommand();
        get.Transaction = tx;
        get.CommandText = "PRAGMA user_version;";
        var version = Convert.ToInt32(get.ExecuteScalar(), CultureInfo.InvariantCulture);
        if (version > SchemaVersion)
        {
            throw new InvalidOperationException($"Outbox schema {version} is newer than this build understands ({SchemaVersion}).");
        }

        if (version < 1)
        {
            Run(db, tx, V1);
        }

        if (version < 2)
        {
            // ADD COLUMN only writes the schema: migrating a large v1 outbox costs nothing per row. Its
            // rows keep a NULL checksum (their bytes were never summed) and NULL wire seqs (equal to theirs).
            Run(db, tx, V2);
        }

        tx.Commit();
    }

    private static void Run(SqliteConnection db, SqliteTransaction tx, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    // Rowid tables throughout: op rows carry KiB payloads (SQLite advises against WITHOUT ROWID for large rows).
    // Internal (not private): the migration tests build a v1 outbox with it.
    internal const string V1 = """
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

    private const string V2 = """
        -- CRC-32C of the seq (8 bytes, little-endian) and the op bytes, checked before they are sent.
        ALTER TABLE ops ADD COLUMN crc INTEGER;
        -- The seq of a batch's first op on the wire (NULL: first_seq). They differ after an op was set aside.
        ALTER TABLE batches ADD COLUMN wire_first_seq INTEGER;
        -- The wire seq of the last sealed op (NULL: sealed_seq).
        ALTER TABLE producers ADD COLUMN wire_sealed_seq INTEGER;
        -- Poison ops: refused by the server at call level, taken out of the sequence with the reason
        -- (state 0), then dropped (1) or enqueued again at the end (2). Rows in states 1 and 2 remain as
        -- the holes they left in the outbox's seqs until compaction passes them.
        CREATE TABLE set_aside(
          share_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          op_id TEXT NOT NULL,
          op BLOB NOT NULL,
          crc INTEGER,
          status INTEGER NOT NULL,
          reason TEXT,
          field TEXT,
          detail TEXT NOT NULL,
          set_aside_at INTEGER NOT NULL,
          state INTEGER NOT NULL,
          PRIMARY KEY(share_id, seq));
        CREATE INDEX set_aside_by_op ON set_aside(op_id);
        -- 1 while a process has the file open (checkpointed into the main file): a main file marked in
        -- use with no -wal beside it lost its last commits.
        CREATE TABLE outbox_session(id INTEGER PRIMARY KEY CHECK (id = 1), in_use INTEGER NOT NULL);
        INSERT INTO outbox_session(id, in_use) VALUES (1, 0);
        PRAGMA user_version = 2;
        """;
}
