// OutboxStore: integrity (docs/client.md, "Integrity"): a new file appears whole, an empty or damaged one and a
// lost write-ahead log are refused, every op row carries a checksum checked when it is read to be sent.
using Microsoft.Data.Sqlite;

namespace ShareRpc.Client.Outbox;

internal sealed partial class OutboxStore
{
    // SQLite result codes that mean the file itself is damaged.
    private const int SqliteCorrupt = 11;
    private const int SqliteNotADatabase = 26;

    // How often the missing-log check is re-run before it is believed: a process closing the file at
    // that moment deletes its log and clears its mark in two steps.
    private const int WalCheckAttempts = 3;

    private static bool IsDamage(SqliteException ex) => ex.SqliteErrorCode is SqliteCorrupt or SqliteNotADatabase;

    private OutboxCorruptException Damaged(string problem, Exception? inner = null) => new(Path, problem, inner);

    /// <summary>
    /// A fresh outbox is built under a temporary name (mode 0600, schema in place, log checkpointed)
    /// and linked to its name only when whole: no process ever sees it empty or half-made, so an
    /// empty file can be refused as damaged. If another process got there first, its file is used.
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

            using (var db = new SqliteConnection(ConnectionString(temp)))
            {
                db.Open();
                Exec(db, "PRAGMA journal_mode=WAL;");
                Migrate(db);
            }

            // No-clobber: File.Move without overwrite links the new name (it never replaces a file).
            File.Move(temp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first.
        }
        finally
        {
            foreach (var leftover in new[] { temp, temp + "-wal", temp + "-shm" })
            {
                File.Delete(leftover);
            }
        }
    }

    /// <summary>
    /// Refuses an empty file (a fresh outbox is never empty, see <see cref="CreateWhole"/>) and one that
    /// was in use when it was last written but has no write-ahead log: its last commits lived in the
    /// log, so opening it would silently go back in time (a half copy, or the log deleted).
    /// </summary>
    private static void CheckBeforeOpen(string path)
    {
        if (new FileInfo(path).Length == 0)
        {
            throw new OutboxCorruptException(path, "it is empty (0 bytes). A missing file is a fresh outbox; an empty one is a failed copy. Move it aside to start a fresh outbox.");
        }

        for (var attempt = 1; ; attempt++)
        {
            if (File.Exists(path + "-wal") || !ReadInUseMark(path, attempt == WalCheckAttempts) || File.Exists(path + "-wal"))
            {
                return;
            }

            if (attempt == WalCheckAttempts)
            {
                throw new OutboxCorruptException(path,
                    $"it was not closed cleanly and its write-ahead log {path}-wal is missing (a half copy?): the commits since its last checkpoint are lost. "
                    + "Put the -wal file back beside it, or move the outbox aside to start a fresh one. (If another SQLite program opened and closed it since, "
                    + $"that program checkpointed the log and nothing is lost: sqlite3 {path} 'UPDATE outbox_session SET in_use = 0'.)");
            }
        }
    }

    /// <summary>
    /// The in-use mark as the main file alone has it, read without creating a log (SQLite's
    /// immutable mode). A v1 outbox has no mark: false. A read error counts as marked unless
    /// <paramref name="final"/>, when it is reported as damage.
    /// </summary>
    private static bool ReadInUseMark(string path, bool final)
    {
        var uri = new Uri(path).AbsoluteUri + "?immutable=1";
        try
        {
            using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = uri, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'outbox_session'";
            if (cmd.ExecuteScalar() is null)
            {
                return false;
            }

            cmd.CommandText = "SELECT in_use FROM outbox_session WHERE id = 1";
            return Convert.ToInt64(cmd.ExecuteScalar() ?? 0L, System.Globalization.CultureInfo.InvariantCulture) != 0;
        }
        catch (SqliteException ex) when (IsDamage(ex))
        {
            // Read while another process checkpoints into the file: look again, unless this was the last look.
            return final ? throw new OutboxCorruptException(path, "SQLite cannot read it: " + ex.Message, ex) : true;
        }
    }

    /// <summary>
    /// Marks the outbox in use in the main file itself (the mark is checkpointed out of the log), so
    /// that a copy of the main file without its log is recognised as incomplete.
    /// </summary>
    private static void MarkInUse(SqliteConnection db)
    {
        Exec(db, "UPDATE outbox_session SET in_use = 1 WHERE id = 1 AND in_use = 0;");
        Exec(db, "PRAGMA wal_checkpoint(PASSIVE);");
    }

    /// <summary>
    /// Clears the in-use mark on a clean close, unless another process is sending from this file (it
    /// holds the writer lock): its session keeps the mark. A read-only visitor (outbox status, create)
    /// must not clear the mark of a live sender.
    /// </summary>
    private void ClearInUseMark()
    {
        try
        {
            if (_lockFile is null)
            {
                using var probe = new FileStream(Path + ".lock", OwnerOnly(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }

            Exec(_db, "UPDATE outbox_session SET in_use = 0 WHERE id = 1;");
        }
        catch (IOException)
        {
            // Another process sends from this file: its mark stays.
        }
        catch (SqliteException)
        {
            // A damaged or full file keeps its mark: the next open checks it again.
        }
    }

    /// <summary>Checks an op row read for sealing or a resend against its stored checksum (null: a row from before checksums).</summary>
    private void VerifyRow(ulong seq, byte[] op, long? crc)
    {
        if (crc is { } stored && (uint)stored != Crc32C.OfOpRow(seq, op))
        {
            throw Damaged($"the op row at seq {seq} fails its checksum (its bytes changed after they were written). Nothing from it was sent.");
        }
    }
}
