using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage;

namespace ShareRpc.Server.Postgres.Internal;

/// <summary>
/// One connection in one transaction. Statements are not sent one by one: they queue in
/// <see cref="Pending"/> (BEGIN, savepoints, buffered writes) and go out together with the next
/// query as one <see cref="NpgsqlBatch"/>, i.e. one round trip. A read view is
/// <c>REPEATABLE READ READ ONLY</c>: every read sees the snapshot taken by the first one.
/// </summary>
internal class PgReader : IShareReader
{
    protected enum Kind { Begin, Savepoint, Control, Write, WriteReturningRows }

    protected readonly record struct Statement(NpgsqlBatchCommand Command, Kind Kind, string? Savepoint = null);

    protected readonly NpgsqlConnection Connection;
    protected readonly PgSql Sql;
    protected readonly List<Statement> Pending = new();
    private readonly int _commandTimeoutSeconds;

    /// <summary>BEGIN reached the server: the connection is inside a transaction until COMMIT/ROLLBACK.</summary>
    protected bool Begun;
    protected bool Finished;

    public PgReader(NpgsqlConnection connection, PgSql sql, string beginSql, int commandTimeoutSeconds)
    {
        Connection = connection;
        Sql = sql;
        _commandTimeoutSeconds = commandTimeoutSeconds;
        Pending.Add(new Statement(new NpgsqlBatchCommand(beginSql), Kind.Begin));
    }

    // ------------------------------------------------------------------ plumbing

    /// <summary>Turns buffered write rows into statements at the end of <see cref="Pending"/> (the writer overrides).</summary>
    protected virtual void MaterializeWrites() { }

    protected static NpgsqlBatchCommand Cmd(string sql, params NpgsqlParameter[] args)
    {
        var c = new NpgsqlBatchCommand(sql);
        foreach (var a in args) c.Parameters.Add(a);
        return c;
    }

    protected static NpgsqlParameter P<T>(T value) => new NpgsqlParameter<T> { TypedValue = value };
    protected static NpgsqlParameter P(object? value, NpgsqlDbType type) => new() { Value = value ?? DBNull.Value, NpgsqlDbType = type };

    private NpgsqlBatch NewBatch()
    {
        var batch = new NpgsqlBatch(Connection) { Timeout = _commandTimeoutSeconds };
        foreach (var s in Pending) batch.BatchCommands.Add(s.Command);
        if (Pending.Count > 0 && Pending[0].Kind == Kind.Begin) Begun = true;
        return batch;
    }

    /// <summary>Sends everything pending (no query). Errors surface here; the pending list is gone either way.</summary>
    protected async Task FlushAsync(CancellationToken ct)
    {
        MaterializeWrites();
        if (Pending.Count == 0) return;
        var batch = NewBatch();
        await using var batchScope = batch.ConfigureAwait(false);
        Pending.Clear();
        await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="sql"/> after everything pending, in one round trip, and maps its rows.</summary>
    protected async Task<List<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> map, CancellationToken ct, params NpgsqlParameter[] args)
    {
        ObjectDisposedException.ThrowIf(Finished, this);
        MaterializeWrites();
        var skip = 0;
        foreach (var s in Pending) if (s.Kind == Kind.WriteReturningRows) skip++;
        Pending.Add(new Statement(Cmd(sql, args), Kind.Control));
        var batch = NewBatch();
        await using var batchScope = batch.ConfigureAwait(false);
        Pending.Clear();
        var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        // Statements without rows produce no result set; the row-returning writes (UPDATE … RETURNING pg_notify) do.
        for (var i = 0; i < skip; i++)
        {
            if (!await reader.NextResultAsync(ct).ConfigureAwait(false)) throw new InvalidOperationException("a batch returned fewer result sets than expected");
        }
        var rows = new List<T>();
        while (await reader.ReadAsync(ct).ConfigureAwait(false)) rows.Add(map(reader));
        while (await reader.NextResultAsync(ct).ConfigureAwait(false)) { }
        return rows;
    }

    protected async Task<T?> QueryOneAsync<T>(string sql, Func<NpgsqlDataReader, T> map, CancellationToken ct, params NpgsqlParameter[] args) where T : class
    {
        var rows = await QueryAsync(sql, map, ct, args).ConfigureAwait(false);
        return rows.Count == 0 ? null : rows[0];
    }

    internal static long L(ulong v) => checked((long)v);
    internal static ulong U(long v) => checked((ulong)v);

    /// <summary>Timestamps are stored as timestamptz at millisecond precision (as the SQLite store keeps them).</summary>
    internal static DateTimeOffset Ms(DateTimeOffset t) => DateTimeOffset.FromUnixTimeMilliseconds(t.ToUnixTimeMilliseconds());
    internal static DateTimeOffset T(NpgsqlDataReader r, int i) => new(r.GetFieldValue<DateTime>(i), TimeSpan.Zero);

    // ------------------------------------------------------------------ reads

    private static ShareRecord ReadShare(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3),
        JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(4)) ?? new Dictionary<string, string>(),
        U(r.GetInt64(5)), U(r.GetInt64(6)), T(r, 7));

    public Task<ShareRecord?> GetShareAsync(string shareId, CancellationToken ct = default) =>
        QueryOneAsync(Sql.ShareById, ReadShare, ct, P(shareId));

    public Task<ShareRecord?> GetShareByKeyAsync(string shareKey, CancellationToken ct = default) =>
        QueryOneAsync(Sql.ShareByKey, ReadShare, ct, P(shareKey));

    protected Task<ShareRecord?> LockShareRowAsync(string shareId, CancellationToken ct) =>
        QueryOneAsync(Sql.ShareByIdForUpdate, ReadShare, ct, P(shareId));

    private static CapabilityRecord ReadCap(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetInt64(3),
        r.GetFieldValue<byte[]>(4), (Rights)r.GetInt32(5),
        r.IsDBNull(6) ? null : T(r, 6), r.IsDBNull(7) ? null : T(r, 7),
        r.GetString(8), T(r, 9));

    public Task<CapabilityRecord?> GetCapabilityAsync(string capabilityId, CancellationToken ct = default) =>
        QueryOneAsync(Sql.CapabilityById, ReadCap, ct, P(capabilityId));

    public Task<CapabilityRecord?> GetCapabilityBySecretHashAsync(long shareRowId, byte[] secretHash, CancellationToken ct = default) =>
        QueryOneAsync(Sql.CapabilityBySecret, ReadCap, ct, P(shareRowId), P(secretHash));

    public async Task<IReadOnlyList<CapabilityRecord>> GetCapabilitiesAsync(long shareRowId, CancellationToken ct = default) =>
        await QueryAsync(Sql.CapabilitiesOfShare, ReadCap, ct, P(shareRowId)).ConfigureAwait(false);

    public async Task<IReadOnlyList<LogEntry>> ReadLogAsync(long shareRowId, ulong fromCursor, int max, long maxBytes = long.MaxValue, CancellationToken ct = default) =>
        WithinBytes(await QueryAsync(Sql.ReadLog, r => new LogEntry(
            U(r.GetInt64(0)), r.GetString(1), r.GetString(2), U(r.GetInt64(3)), (OpKind)r.GetInt16(4),
            r.GetString(5), r.GetString(6), r.IsDBNull(7) ? null : r.GetFieldValue<byte[]>(7), r.GetString(8),
            r.IsDBNull(9) ? null : U(r.GetInt64(9)), r.IsDBNull(10) ? [] : r.GetString(10).Split('\n'),
            U(r.GetInt64(11)), T(r, 12)),
            ct, P(shareRowId), P(L(fromCursor)), P((long)max), P(maxBytes)).ConfigureAwait(false), StoredBytes.Of, maxBytes);

    public async Task<IReadOnlyList<DocumentRecord>> ReadDocumentsAsync(
        long shareRowId, string? collection, (string Collection, string Key)? after, int max, long maxBytes = long.MaxValue, CancellationToken ct = default)
    {
        static DocumentRecord Map(NpgsqlDataReader r) => new(r.GetString(0), r.GetString(1),
            r.IsDBNull(2) ? [] : r.GetFieldValue<byte[]>(2), r.GetString(3), U(r.GetInt64(4)), U(r.GetInt64(5)));
        // Four statement texts (with/without collection, with/without page start), each prepared once,
        // so a page starts with an index range scan at its first key, never at the share's first document.
        var args = new List<NpgsqlParameter> { P(shareRowId), P((long)max), P(maxBytes) };
        if (collection is not null) args.Add(P(collection));
        if (after is { } a)
        {
            args.Add(P(a.Collection));
            args.Add(P(a.Key));
        }
        var docs = await QueryAsync(Sql.ReadDocuments(collection is not null, after is not null), Map, ct, args.ToArray()).ConfigureAwait(false);
        return WithinBytes(docs, StoredBytes.Of, maxBytes);
    }

    public async Task<bool> HasDocumentsAfterAsync(long shareRowId, string? collection, (string Collection, string Key) after, CancellationToken ct = default)
    {
        var rows = collection is null
            ? await QueryAsync(Sql.HasDocumentsAfter, r => r.GetInt32(0), ct, P(shareRowId), P(after.Collection), P(after.Key)).ConfigureAwait(false)
            : await QueryAsync(Sql.HasDocumentsAfterIn, r => r.GetInt32(0), ct, P(shareRowId), P(after.Collection), P(after.Key), P(collection)).ConfigureAwait(false);
        return rows.Count > 0;
    }

    /// <summary>The server cut by value bytes; the contract counts ids too: keep the prefix that fits (at least one).</summary>
    private static List<T> WithinBytes<T>(List<T> rows, Func<T, long> size, long maxBytes)
    {
        long total = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            total += size(rows[i]);
            if (i > 0 && total > maxBytes)
            {
                rows.RemoveRange(i, rows.Count - i);
                break;
            }
        }
        return rows;
    }

    // ------------------------------------------------------------------ end

    /// <summary>Ends the transaction (ROLLBACK unless committed) and returns the connection to its pool.</summary>
    public virtual async ValueTask DisposeAsync()
    {
        if (Finished) return;
        Finished = true;
        Pending.Clear();
        try
        {
            if (Begun && Connection.State == System.Data.ConnectionState.Open)
            {
                var cmd = new NpgsqlCommand("ROLLBACK", Connection);
                await using var cmdScope = cmd.ConfigureAwait(false);
                await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            // A broken connection: Npgsql will not hand it out again.
        }
        finally
        {
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
