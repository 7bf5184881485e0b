// OutboxStore: persisted create-share intents (written before the remote call).
using Microsoft.Data.Sqlite;

namespace ShareRpc.Client.Outbox;

internal sealed partial class OutboxStore
{
    /// <summary>
    /// The persisted intent to create a share: written (with its owner secret) before the remote
    /// call, so a crash or a lost response never orphans a share. The first caller's secret wins
    /// across tasks and processes (one SQLite transaction), so every racer creates the same share.
    /// </summary>
    public Task<ShareIntent> GetOrAddShareIntentAsync(string server, string shareKey, string title, byte[] newSecret)
    {
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentException.ThrowIfNullOrEmpty(shareKey);
        return WithDbAsync(() =>
        {
            using var tx = _db.BeginTransaction();
            using (var cmd = _db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    INSERT INTO share_intents(share_key, server, owner_secret, title, state, created_at)
                    VALUES ($k, $s, $secret, $title, 0, $t) ON CONFLICT DO NOTHING
                    """;
                cmd.Parameters.AddWithValue("$k", shareKey);
                cmd.Parameters.AddWithValue("$s", server);
                cmd.Parameters.AddWithValue("$secret", newSecret);
                cmd.Parameters.AddWithValue("$title", title ?? "");
                cmd.Parameters.AddWithValue("$t", NowMs());
                cmd.ExecuteNonQuery();
            }

            var intent = ReadIntent(server, shareKey, tx)!;
            tx.Commit();
            return intent;
        });
    }

    /// <summary>Records the server's answer to a create (or clears it: null, for a recreate).</summary>
    public Task SetShareIntentResultAsync(string server, string shareKey, string? shareId, string? sturdyRef, ShareIntentState state) => WithDbAsync(() =>
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "UPDATE share_intents SET share_id = $id, sturdy_ref = $r, state = $st WHERE server = $s AND share_key = $k";
        cmd.Parameters.AddWithValue("$id", (object?)shareId ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$r", (object?)sturdyRef ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$st", (int)state);
        cmd.Parameters.AddWithValue("$s", server);
        cmd.Parameters.AddWithValue("$k", shareKey);
        cmd.ExecuteNonQuery();
    });

    public Task<ShareIntent?> GetShareIntentAsync(string server, string shareKey) => WithDbAsync(() => ReadIntent(server, shareKey, null));

    private ShareIntent? ReadIntent(string server, string shareKey, SqliteTransaction? tx)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT owner_secret, title, share_id, sturdy_ref, state FROM share_intents WHERE server = $s AND share_key = $k";
        cmd.Parameters.AddWithValue("$s", server);
        cmd.Parameters.AddWithValue("$k", shareKey);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new ShareIntent(server, shareKey, (byte[])r.GetValue(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), (ShareIntentState)r.GetInt32(4))
            : null;
    }
}

/// <summary>Where a share's creation stands.</summary>
internal enum ShareIntentState
{
    Pending = 0,
    Created = 1,
    Aborted = 2,
}

/// <summary>A persisted create-share intent and, once known, its result.</summary>
internal sealed record ShareIntent(string Server, string ShareKey, byte[] OwnerSecret, string Title, string? ShareId, string? SturdyRef, ShareIntentState State);
