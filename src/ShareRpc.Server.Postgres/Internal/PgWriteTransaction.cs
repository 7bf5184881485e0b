using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage;

namespace ShareRpc.Server.Postgres.Internal;

/// <summary>
/// A READ COMMITTED write transaction. Writes that return nothing (log rows, document upserts,
/// rejections, producer seqs, share heads + NOTIFY, revocations) are buffered as rows and sent as
/// a few multi-row statements (<c>INSERT … SELECT * FROM unnest(arrays)</c>) together with the next
/// read, the release of the savepoint they belong to, or the commit — so a batch of 500 ops costs
/// one round trip for its writes. An error from buffered writes therefore surfaces at the latest at
/// <see cref="ReleaseSavepointAsync"/> of the write that issued them, and the savepoint is still
/// there to roll back to. The log row id handed out is the op's cursor (the log's key is
/// (share, cursor)), so no id needs a round trip.
/// </summary>
internal sealed class PgWriteTransaction(NpgsqlConnection connection, PgSql sql, string channel, int commandTimeoutSeconds)
    : PgReader(connection, sql, PgSql.BeginWrite, commandTimeoutSeconds), IShareTransaction
{
    private readonly List<LogEntry> _log = new();
    private readonly List<long> _logShares = new();
    private readonly Dictionary<(long Share, string Collection, string Key), (long Version, long Cursor, long LogCursor, bool Deleted)> _docs = new();
    private readonly List<(long Share, string OpId, int Reason, string Detail)> _rejections = new();
    private readonly Dictionary<(long Share, string Producer), (long LastSeq, long Capability)> _producers = new();
    private readonly Dictionary<long, (long Epoch, long Cursor)> _heads = new();
    private bool _committed;

    private bool HasBufferedRows => _log.Count + _docs.Count + _rejections.Count + _producers.Count + _heads.Count > 0;

    protected override void MaterializeWrites()
    {
        if (!HasBufferedRows) return;
        if (_log.Count > 0)
        {
            var n = _log.Count;
            var cursor = new long[n]; var seq = new long[n]; var version = new long[n];
            var opId = new string[n]; var producer = new string[n]; var coll = new string[n]; var key = new string[n]; var ctype = new string[n];
            var kind = new short[n]; var value = new byte[]?[n]; var expected = new long?[n]; var deps = new string?[n]; var at = new DateTime[n];
            for (var i = 0; i < n; i++)
            {
                var e = _log[i];
                cursor[i] = L(e.Cursor); seq[i] = L(e.Seq); version[i] = L(e.Version);
                opId[i] = e.OpId; producer[i] = e.ProducerId; coll[i] = e.Collection; key[i] = e.Key; ctype[i] = e.ContentType;
                kind[i] = (short)e.Kind; value[i] = e.Value; expected[i] = e.ExpectedVersion is { } ev ? L(ev) : null;
                deps[i] = e.DependsOn.Count == 0 ? null : string.Join('\n', e.DependsOn);
                at[i] = Ms(e.CommittedAt).UtcDateTime;
            }
            Write(Sql.InsertLog,
                P(_logShares.ToArray()), P(cursor), P(opId), P(producer), P(seq), P(kind), P(coll), P(key),
                P(value, NpgsqlDbType.Array | NpgsqlDbType.Bytea), P(ctype), P(expected, NpgsqlDbType.Array | NpgsqlDbType.Bigint),
                P(deps, NpgsqlDbType.Array | NpgsqlDbType.Text), P(version), P(at, NpgsqlDbType.Array | NpgsqlDbType.TimestampTz));
            _log.Clear();
            _logShares.Clear();
        }
        if (_docs.Count > 0)
        {
            var n = _docs.Count;
            var share = new long[n]; var coll = new string[n]; var key = new string[n];
            var version = new long[n]; var cursor = new long[n]; var logCursor = new long[n]; var deleted = new bool[n];
            var i = 0;
            foreach (var ((s, c, k), d) in _docs)
            {
                share[i] = s; coll[i] = c; key[i] = k; version[i] = d.Version; cursor[i] = d.Cursor; logCursor[i] = d.LogCursor; deleted[i] = d.Deleted;
                i++;
            }
            Write(Sql.UpsertDocuments, P(share), P(coll), P(key), P(version), P(cursor), P(logCursor), P(deleted));
            _docs.Clear();
        }
        if (_rejections.Count > 0)
        {
            Write(Sql.InsertRejections,
                P(_rejections.Select(r => r.Share).ToArray()), P(_rejections.Select(r => r.OpId).ToArray()),
                P(_rejections.Select(r => r.Reason).ToArray()), P(_rejections.Select(r => r.Detail).ToArray()));
            _rejections.Clear();
        }
        if (_producers.Count > 0)
        {
            Write(Sql.UpsertProducers,
                P(_producers.Keys.Select(k => k.Share).ToArray()), P(_producers.Keys.Select(k => k.Producer).ToArray()),
                P(_producers.Values.Select(v => v.LastSeq).ToArray()), P(_producers.Values.Select(v => v.Capability).ToArray()));
            _producers.Clear();
        }
        foreach (var (share, head) in _heads)
            Pending.Add(new Statement(Cmd(Sql.UpdateHeadAndNotify, P(share), P(head.Epoch), P(head.Cursor), P(channel)), Kind.WriteReturningRows));
        _heads.Clear();
    }

    private void Write(string text, params NpgsqlParameter[] args) => Pending.Add(new Statement(Cmd(text, args), Kind.Write));

    private void DiscardBufferedRows()
    {
        _log.Clear();
        _logShares.Clear();
        _docs.Clear();
        _rejections.Clear();
        _producers.Clear();
        _heads.Clear();
    }

    // ------------------------------------------------------------------ transaction control

    /// <summary>
    /// The caller's savepoint names, innermost last. On the server a savepoint is named by its depth
    /// (sp0, sp1 …): the group committer's w0 … w255 then become one statement text each for
    /// SAVEPOINT / RELEASE / ROLLBACK TO, so they do not crowd the hot statements out of Npgsql's
    /// auto-prepare cache.
    /// </summary>
    private readonly List<string> _savepoints = new();

    private int Depth(string name)
    {
        var i = _savepoints.LastIndexOf(name);
        return i >= 0 ? i : throw new InvalidOperationException($"no savepoint '{name}' is open in this transaction");
    }

    private static string ServerName(int depth) => "sp" + depth.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public Task<ShareRecord?> LockShareAsync(string shareId, CancellationToken ct = default) => LockShareRowAsync(shareId, ct);

    public Task SavepointAsync(string name, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        MaterializeWrites();
        var server = ServerName(_savepoints.Count);
        _savepoints.Add(name);
        Pending.Add(new Statement(Cmd("SAVEPOINT " + server), Kind.Savepoint, server));
        return Task.CompletedTask;
    }

    public async Task ReleaseSavepointAsync(string name, CancellationToken ct = default)
    {
        var depth = Depth(name);
        MaterializeWrites();
        var writesPending = Pending.Any(s => s.Kind is Kind.Write or Kind.WriteReturningRows);
        Pending.Add(new Statement(Cmd("RELEASE SAVEPOINT " + ServerName(depth)), Kind.Control));
        // Errors of this write's buffered statements must surface now, while its savepoint exists
        // (on an error the RELEASE did not run: the savepoint stays open to roll back to).
        if (writesPending) await FlushAsync(ct).ConfigureAwait(false);
        _savepoints.RemoveRange(depth, _savepoints.Count - depth);
    }

    public Task RollbackToSavepointAsync(string name, CancellationToken ct = default)
    {
        var depth = Depth(name);
        var server = ServerName(depth);
        _savepoints.RemoveRange(depth + 1, _savepoints.Count - depth - 1);
        DiscardBufferedRows();
        var at = Pending.FindLastIndex(s => s.Kind == Kind.Savepoint && s.Savepoint == server);
        if (at >= 0)
        {
            // The savepoint was never sent: drop what came after it (it stays, as after ROLLBACK TO).
            Pending.RemoveRange(at + 1, Pending.Count - at - 1);
        }
        else
        {
            // Everything still pending came after the savepoint: drop it, and roll back on the server.
            Pending.Clear();
            Pending.Add(new Statement(Cmd("ROLLBACK TO SAVEPOINT " + server), Kind.Control));
        }
        return Task.CompletedTask;
    }

    public async Task CommitAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(Finished, this);
        MaterializeWrites();
        if (!Begun && Pending.All(s => s.Kind is Kind.Begin or Kind.Savepoint or Kind.Control))
        {
            // Nothing ever reached the server and nothing is written: there is nothing to commit.
            Pending.Clear();
            _committed = true;
            return;
        }
        Pending.Add(new Statement(Cmd("COMMIT"), Kind.Control));
        await FlushAsync(ct).ConfigureAwait(false);
        _committed = true;
    }

    // ------------------------------------------------------------------ writes that need an answer

    public async Task<long> InsertShareAsync(string shareId, string shareKey, string title, IReadOnlyDictionary<string, string> labels,
        DateTimeOffset createdAt, CancellationToken ct = default)
    {
        var rows = await QueryAsync(Sql.InsertShare, r => r.GetInt64(0), ct,
            P(shareId), P(shareKey), P(title), P(JsonSerializer.Serialize(labels)), P(Ms(createdAt).UtcDateTime, NpgsqlDbType.TimestampTz)).ConfigureAwait(false);
        return rows[0];
    }

    public async Task<long> InsertCapabilityAsync(string capabilityId, long shareRowId, long? parentRowId, byte[] secretHash, Rights rights,
        DateTimeOffset? expiresAt, string note, DateTimeOffset createdAt, CancellationToken ct = default)
    {
        var rows = await QueryAsync(Sql.InsertCapability, r => r.GetInt64(0), ct,
            P(capabilityId), P(shareRowId), P(parentRowId, NpgsqlDbType.Bigint), P(secretHash), P((int)rights),
            P(expiresAt is { } x ? Ms(x).UtcDateTime : null, NpgsqlDbType.TimestampTz), P(note), P(Ms(createdAt).UtcDateTime, NpgsqlDbType.TimestampTz))
            .ConfigureAwait(false);
        return rows[0];
    }

    // ------------------------------------------------------------------ buffered writes

    public Task UpdateShareHeadAsync(long shareRowId, ulong epoch, ulong cursor, CancellationToken ct = default)
    {
        _heads[shareRowId] = (L(epoch), L(cursor)); // the last head of a share wins; NOTIFY goes out with it
        return Task.CompletedTask;
    }

    public Task MarkRevokedAsync(IReadOnlyList<long> capabilityRowIds, DateTimeOffset revokedAt, CancellationToken ct = default)
    {
        if (capabilityRowIds.Count > 0)
        {
            MaterializeWrites(); // keep statement order
            Write(Sql.MarkRevoked, P(capabilityRowIds.ToArray()), P(Ms(revokedAt).UtcDateTime, NpgsqlDbType.TimestampTz));
        }
        return Task.CompletedTask;
    }

    public Task SetProducerAsync(long shareRowId, string producerId, ulong lastSeq, long capabilityRowId, CancellationToken ct = default)
    {
        _producers[(shareRowId, producerId)] = (L(lastSeq), capabilityRowId);
        return Task.CompletedTask;
    }

    public Task<long> AppendLogAsync(long shareRowId, LogEntry entry, CancellationToken ct = default)
    {
        _log.Add(entry);
        _logShares.Add(shareRowId);
        return Task.FromResult(L(entry.Cursor)); // the log row id is the cursor (key (share, cursor))
    }

    public Task UpsertDocumentAsync(long shareRowId, string collection, string key, ulong version, ulong cursor, long logRowId, bool deleted, CancellationToken ct = default)
    {
        // Within one flush only a document's last state matters (one multi-row upsert may touch a row once).
        _docs[(shareRowId, collection, key)] = (L(version), L(cursor), logRowId, deleted);
        return Task.CompletedTask;
    }

    public Task InsertRejectionAsync(long shareRowId, string opId, int rejectReason, string detail, CancellationToken ct = default)
    {
        _rejections.Add((shareRowId, opId, rejectReason, detail));
        return Task.CompletedTask;
    }

    // ------------------------------------------------------------------ reads only the writer has

    private static OpOutcome MapOutcome(NpgsqlDataReader r) =>
        new(r.GetBoolean(1), U(r.GetInt64(2)), U(r.GetInt64(3)), r.GetInt32(4), r.GetString(5));

    public async Task<OpOutcome?> FindOpAsync(long shareRowId, string opId, CancellationToken ct = default)
    {
        var found = await FindOpsAsync(shareRowId, [opId], ct).ConfigureAwait(false);
        return found.GetValueOrDefault(opId);
    }

    public async Task<Dictionary<string, OpOutcome>> FindOpsAsync(long shareRowId, IReadOnlyCollection<string> opIds, CancellationToken ct = default)
    {
        var result = new Dictionary<string, OpOutcome>(StringComparer.Ordinal);
        if (opIds.Count == 0) return result;
        var ids = opIds.Distinct(StringComparer.Ordinal).ToArray();
        var rows = await QueryAsync(Sql.FindOps, r => (r.GetString(0), MapOutcome(r)), ct, P(shareRowId), P(ids)).ConfigureAwait(false);
        foreach (var (id, outcome) in rows) result[id] = outcome;
        return result;
    }

    public async Task<ProducerRecord?> GetProducerAsync(long shareRowId, string producerId, CancellationToken ct = default)
    {
        var rows = await QueryAsync(Sql.Producer, r => new ProducerRecord(U(r.GetInt64(0)), r.IsDBNull(1) ? null : r.GetInt64(1)), ct,
            P(shareRowId), P(producerId)).ConfigureAwait(false);
        return rows.Count == 0 ? null : rows[0];
    }

    public async Task<DocumentHead?> GetDocumentHeadAsync(long shareRowId, string collection, string key, CancellationToken ct = default)
    {
        var heads = await GetDocumentHeadsAsync(shareRowId, [(collection, key)], ct).ConfigureAwait(false);
        return heads.GetValueOrDefault((collection, key));
    }

    public async Task<Dictionary<(string Collection, string Key), DocumentHead>> GetDocumentHeadsAsync(
        long shareRowId, IReadOnlyCollection<(string Collection, string Key)> keys, CancellationToken ct = default)
    {
        var result = new Dictionary<(string Collection, string Key), DocumentHead>();
        if (keys.Count == 0) return result;
        var distinct = keys.Distinct().ToArray();
        var rows = await QueryAsync(Sql.DocumentHeads,
            r => ((r.GetString(0), r.GetString(1)), new DocumentHead(U(r.GetInt64(2)), U(r.GetInt64(3)), r.GetInt64(4), r.GetBoolean(5))), ct,
            P(shareRowId), P(distinct.Select(k => k.Collection).ToArray()), P(distinct.Select(k => k.Key).ToArray())).ConfigureAwait(false);
        foreach (var (k, head) in rows) result[k] = head;
        return result;
    }

    public override ValueTask DisposeAsync()
    {
        DiscardBufferedRows();
        if (_committed)
        {
            Begun = false; // COMMIT ended the transaction: nothing to roll back
        }
        return base.DisposeAsync();
    }
}
