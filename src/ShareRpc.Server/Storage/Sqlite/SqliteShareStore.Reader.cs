using System.Text.Json;
using Microsoft.Data.Sqlite;
using ShareRpc.Server.Capabilities;

namespace ShareRpc.Server.Storage.Sqlite;

internal sealed partial class SqliteShareStore
{
    // ------------------------------------------------------------------ reader

    private class Reader(SqliteConnection connection, SqliteTransaction tx, bool ownsConnection) : IShareReader
    {
        protected readonly SqliteConnection Connection = connection;
        protected readonly SqliteTransaction Tx = tx;
        private bool _done;

        protected virtual SqliteCommand Command(string sql)
        {
            var cmd = Connection.CreateCommand();
            cmd.CommandText = sql;
            cmd.Transaction = Tx;
            return cmd;
        }

        protected virtual void Release(SqliteCommand cmd) => cmd.Dispose();

        protected T Run<T>(string sql, Func<SqliteCommand, T> body, params (string Name, object? Value)[] args)
        {
            var cmd = Command(sql);
            try
            {
                if (cmd.Parameters.Count == args.Length)
                {
                    // A cached writer command: same SQL, same parameter names; rebind values only.
                    for (var i = 0; i < args.Length; i++) cmd.Parameters[i].Value = args[i].Value ?? DBNull.Value;
                }
                else
                {
                    cmd.Parameters.Clear();
                    foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
                }
                return body(cmd);
            }
            finally
            {
                Release(cmd);
            }
        }

        protected static long L(ulong v) => checked((long)v);
        protected static ulong U(long v) => checked((ulong)v);
        protected static long Ms(DateTimeOffset t) => t.ToUnixTimeMilliseconds();
        protected static DateTimeOffset T(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

        private const string ShareColumns = "id, share_id, share_key, title, labels, epoch, cursor, created_at";

        private static ShareRecord ReadShare(SqliteDataReader r) => new(
            r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3),
            JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(4)) ?? new Dictionary<string, string>(),
            U(r.GetInt64(5)), U(r.GetInt64(6)), T(r.GetInt64(7)));

        private ShareRecord? OneShare(string where, object value) =>
            Run($"SELECT {ShareColumns} FROM shares WHERE {where} = $v", cmd =>
            {
                using var r = cmd.ExecuteReader();
                return r.Read() ? ReadShare(r) : null;
            }, ("$v", value));

        public Task<ShareRecord?> GetShareAsync(string shareId, CancellationToken ct = default) =>
            Task.FromResult(OneShare("share_id", shareId));

        public Task<ShareRecord?> GetShareByKeyAsync(string shareKey, CancellationToken ct = default) =>
            Task.FromResult(OneShare("share_key", shareKey));

        private const string CapColumns = "id, capability_id, share, parent, secret_hash, rights, expires_at, revoked_at, note, created_at";

        private static CapabilityRecord ReadCap(SqliteDataReader r) => new(
            r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetInt64(3),
            (byte[])r.GetValue(4), (Rights)r.GetInt32(5),
            r.IsDBNull(6) ? null : T(r.GetInt64(6)), r.IsDBNull(7) ? null : T(r.GetInt64(7)),
            r.GetString(8), T(r.GetInt64(9)));

        public Task<CapabilityRecord?> GetCapabilityAsync(string capabilityId, CancellationToken ct = default) =>
            Task.FromResult(Run($"SELECT {CapColumns} FROM capabilities WHERE capability_id = $v", cmd =>
            {
                using var r = cmd.ExecuteReader();
                return r.Read() ? ReadCap(r) : null;
            }, ("$v", capabilityId)));

        public Task<CapabilityRecord?> GetCapabilityBySecretHashAsync(long shareRowId, byte[] secretHash, CancellationToken ct = default) =>
            Task.FromResult(Run($"SELECT {CapColumns} FROM capabilities WHERE share = $s AND secret_hash = $h", cmd =>
            {
                using var r = cmd.ExecuteReader();
                return r.Read() ? ReadCap(r) : null;
            }, ("$s", shareRowId), ("$h", secretHash)));

        public Task<IReadOnlyList<CapabilityRecord>> GetCapabilitiesAsync(long shareRowId, CancellationToken ct = default) =>
            Task.FromResult<IReadOnlyList<CapabilityRecord>>(Run($"SELECT {CapColumns} FROM capabilities WHERE share = $s ORDER BY id", cmd =>
            {
                var list = new List<CapabilityRecord>();
                using var r = cmd.ExecuteReader();
                while (r.Read()) list.Add(ReadCap(r));
                return list;
            }, ("$s", shareRowId)));

        public Task<IReadOnlyList<LogEntry>> ReadLogAsync(long shareRowId, ulong fromCursor, int max, long maxBytes = long.MaxValue, CancellationToken ct = default) =>
            Task.FromResult<IReadOnlyList<LogEntry>>(Run(
                "SELECT cursor, op_id, producer_id, seq, kind, collection, key, value, content_type, expected_version, depends_on, version, committed_at, length(value) " +
                "FROM log WHERE share = $s AND cursor >= $c ORDER BY cursor LIMIT $n", cmd =>
                {
                    var list = new List<LogEntry>();
                    long total = 0;
                    using var r = cmd.ExecuteReader();
                    while (r.Read())
                    {
                        var deps = r.IsDBNull(10) ? [] : r.GetString(10).Split('\n');
                        var entry = new LogEntry(
                            U(r.GetInt64(0)), r.GetString(1), r.GetString(2), U(r.GetInt64(3)), (OpKind)r.GetInt32(4),
                            r.GetString(5), r.GetString(6), null, r.GetString(8),
                            r.IsDBNull(9) ? null : U(r.GetInt64(9)), deps, U(r.GetInt64(11)), T(r.GetInt64(12)));
                        // Sized before the value is read: the entry that does not fit is never loaded.
                        var size = StoredBytes.Of(entry, r.IsDBNull(13) ? 0 : r.GetInt64(13));
                        if (list.Count > 0 && total + size > maxBytes) break;
                        total += size;
                        list.Add(r.IsDBNull(7) ? entry : entry with { Value = (byte[])r.GetValue(7) });
                    }
                    return list;
                }, ("$s", shareRowId), ("$c", L(fromCursor)), ("$n", max)));

        public Task<IReadOnlyList<DocumentRecord>> ReadDocumentsAsync(
            long shareRowId, string? collection, (string Collection, string Key)? after, int max, long maxBytes = long.MaxValue, CancellationToken ct = default)
        {
            var sql = "SELECT d.collection, d.key, l.value, l.content_type, d.version, d.cursor, length(l.value) FROM documents d JOIN log l ON l.id = d.log_id " +
                      "WHERE d.share = $s AND d.deleted = 0";
            var args = new List<(string, object?)> { ("$s", shareRowId), ("$n", max) };
            if (collection is not null)
            {
                sql += " AND d.collection = $coll";
                args.Add(("$coll", collection));
            }
            if (after is { } a)
            {
                sql += " AND (d.collection, d.key) > ($ac, $ak)";
                args.Add(("$ac", a.Collection));
                args.Add(("$ak", a.Key));
            }
            sql += " ORDER BY d.collection, d.key LIMIT $n";
            return Task.FromResult<IReadOnlyList<DocumentRecord>>(Run(sql, cmd =>
            {
                var list = new List<DocumentRecord>();
                long total = 0;
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    var doc = new DocumentRecord(r.GetString(0), r.GetString(1), [], r.GetString(3), U(r.GetInt64(4)), U(r.GetInt64(5)));
                    var size = StoredBytes.Of(doc, r.IsDBNull(6) ? 0 : r.GetInt64(6));
                    if (list.Count > 0 && total + size > maxBytes) break;
                    total += size;
                    list.Add(r.IsDBNull(2) ? doc : doc with { Value = (byte[])r.GetValue(2) });
                }
                return list;
            }, args.ToArray()));
        }

        public Task<bool> HasDocumentsAfterAsync(long shareRowId, string? collection, (string Collection, string Key) after, CancellationToken ct = default)
        {
            var sql = "SELECT 1 FROM documents WHERE share = $s AND deleted = 0 AND (collection, key) > ($ac, $ak)" +
                      (collection is null ? "" : " AND collection = $coll") + " LIMIT 1";
            var args = new List<(string, object?)> { ("$s", shareRowId), ("$ac", after.Collection), ("$ak", after.Key) };
            if (collection is not null) args.Add(("$coll", collection));
            return Task.FromResult(Run(sql, cmd => cmd.ExecuteScalar() is not null, args.ToArray()));
        }

        public virtual ValueTask DisposeAsync()
        {
            if (_done) return ValueTask.CompletedTask;
            _done = true;
            try { Tx.Dispose(); }
            finally
            {
                if (ownsConnection) Connection.Dispose();
            }
            return ValueTask.CompletedTask;
        }
    }

}
