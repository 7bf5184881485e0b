// LiteDbOutboxStore: integrity (docs/client.md, "Integrity" and "Outbox stores"): a new file appears whole, an
// empty, encrypted or damaged one and a lost log are refused, every op row carries a checksum checked when it is read to be sent.
using LiteDB;
using ShareRpc.Client.Outbox;

namespace ShareRpc.Client.LiteDb;

internal sealed partial class LiteDbOutboxStore
{
    // The layout version in the meta collection: 1 is the first LiteDB outbox.
    private const int SchemaVersion = 1;

    private static bool IsDamage(LiteException ex) =>
        ex.ErrorCode is LiteException.INVALID_DATABASE or LiteException.INVALID_DATAFILE_STATE or LiteException.INVALID_FREE_SPACE_PAGE or LiteException.INVALID_FORMAT;

    private OutboxCorruptException Damaged(string problem, Exception? inner = null) => new(Path, problem, inner);

    /// <summary>
    /// LiteDB encrypts with AES when given a password, and its AES stream never fsyncs: such an outbox could
    /// not keep its durability promise, so a connection string with a password is refused outright.
    /// </summary>
    private static void RefusePassword(string path)
    {
        if (path.Contains('=', StringComparison.Ordinal) && new ConnectionString(path).Password is { Length: > 0 })
        {
            throw new ArgumentException("A LiteDB outbox cannot be password-protected: encrypted LiteDB never fsyncs its writes, so an op would not be durable when Enqueue returns. Give a plain file path.", nameof(path));
        }
    }

    /// <summary>
    /// A fresh outbox is built under a temporary name (mode 0600, collections and indexes in place, log
    /// checkpointed and gone) and moved to its name only when whole, so an empty file can be refused as
    /// damaged. The caller holds the process lock: no other process is creating it.
    /// </summary>
    private static void CreateWhole(string path)
    {
        var temp = $"{path}.new-{Guid.NewGuid():N}";
        try
        {
            // The file holds sturdy refs (secrets): owner-only from its first byte.
            using (new FileStream(temp, OwnerOnly(FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite)))
            {
            }

            using (var log = FsyncLogStream.Open(LogPathOf(temp), fsync: true))
            using (var db = OpenDatabase(temp, log))
            {
                db.GetCollection(Batches).EnsureIndex("k", "$.k", unique: true);
                db.GetCollection(SetAsideCol).EnsureIndex("op_id", "$.op_id", unique: false);
                db.GetCollection(Meta).Insert(new BsonDocument { ["_id"] = "schema", ["version"] = SchemaVersion });
                db.GetCollection(Meta).Insert(new BsonDocument { ["_id"] = "session", ["in_use"] = false });
            }

            // No-clobber: File.Move without overwrite never replaces a file.
            File.Move(temp, path, overwrite: false);
        }
        finally
        {
            File.Delete(temp);
            File.Delete(LogPathOf(temp));
        }
    }

    /// <summary>
    /// Refuses an empty file (a fresh outbox is never empty, see <see cref="CreateWhole"/>) and an encrypted one
    /// (LiteDB marks it with a first byte of 1; see <see cref="RefusePassword"/> for why).
    /// </summary>
    private static void CheckBeforeOpen(string path)
    {
        var first = new byte[1];
        int read;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            read = f.Read(first, 0, 1);
        }

        if (read == 0)
        {
            throw new OutboxCorruptException(path, "it is empty (0 bytes). A missing file is a fresh outbox; an empty one is a failed copy. Move it aside to start a fresh outbox.");
        }

        if (first[0] == 1)
        {
            throw new OutboxCorruptException(path, "it is a password-protected (encrypted) LiteDB file. Encrypted LiteDB never fsyncs its writes, so it cannot keep an outbox: use an unencrypted file.");
        }
    }

    /// <summary>
    /// Checks the layout version, and refuses a file that was in use when last written but has no log beside
    /// it: its commits since the last checkpoint lived in the log (a half copy, or the log deleted). Then
    /// marks it in use in the data file itself (checkpointed), so that such a copy is recognised.
    /// </summary>
    private static void CheckSession(LiteDatabase db, string path, bool hadLog)
    {
        var meta = db.GetCollection(Meta);
        var version = meta.FindById("schema")?["version"].AsInt32 ?? 0;
        if (version != SchemaVersion)
        {
            db.Dispose();
            throw new OutboxCorruptException(path, version == 0
                ? "it is a LiteDB file but not a ShareRpc outbox (no schema record)."
                : $"its outbox layout {version} is not one this build understands ({SchemaVersion}).");
        }

        if (!hadLog && meta.FindById("session")?["in_use"].AsBoolean == true)
        {
            db.Dispose();
            throw new OutboxCorruptException(path,
                $"it was not closed cleanly and its log {LogPathOf(path)} is missing (a half copy?): the commits since its last checkpoint are lost. "
                + "Put the log back beside it, or move the outbox aside to start a fresh one.");
        }

        meta.Upsert(new BsonDocument { ["_id"] = "session", ["in_use"] = true });
        db.Checkpoint();
    }

    /// <summary>Checks an op row read for sealing or a resend against its stored checksum.</summary>
    private void VerifyRow(ulong seq, byte[] op, long crc)
    {
        if ((uint)crc != Crc32C.OfOpRow(seq, op))
        {
            throw Damaged($"the op row at seq {seq} fails its checksum (its bytes changed after they were written). Nothing from it was sent.");
        }
    }

    /// <summary>Reads an op row (seq, op, crc, t) and checks its checksum.</summary>
    private OutboxStore.OpRow ReadRow(BsonDocument doc)
    {
        var seq = (ulong)doc["seq"].AsInt64;
        var bytes = doc["op"].IsBinary ? doc["op"].AsBinary : throw Damaged($"the op row at seq {seq} holds no op bytes (a {doc["op"].Type} value).");
        VerifyRow(seq, bytes, doc["crc"].AsInt64);
        return new OutboxStore.OpRow(seq, bytes, doc["t"].AsInt64);
    }
}
