namespace ShareRpc.Server.Postgres.Internal;

/// <summary>Every statement, built once with the schema name. Parameters are positional ($1 …).</summary>
internal sealed class PgSql
{
    public PgSql(string schema)
    {
        var s = schema;
        Schema = s;
        const string shareCols = "id, share_id, share_key, title, labels::text, epoch, cursor, created_at";
        ShareById = $"SELECT {shareCols} FROM {s}.shares WHERE share_id = $1";
        ShareByKey = $"SELECT {shareCols} FROM {s}.shares WHERE share_key = $1";
        ShareByIdForUpdate = $"SELECT {shareCols} FROM {s}.shares WHERE share_id = $1 FOR UPDATE";
        const string capCols = "id, capability_id, share, parent, secret_hash, rights, expires_at, revoked_at, note, created_at";
        CapabilityById = $"SELECT {capCols} FROM {s}.capabilities WHERE capability_id = $1";
        CapabilityBySecret = $"SELECT {capCols} FROM {s}.capabilities WHERE share = $1 AND secret_hash = $2";
        CapabilitiesOfShare = $"SELECT {capCols} FROM {s}.capabilities WHERE share = $1 ORDER BY id";
        // Byte-bounded reads (IShareReader.ReadLogAsync): a running sum of value sizes, in the scan's
        // own order, stops the rows the chunk has no room for on the server, so their values are
        // never sent; the store then applies the exact rule (ids included) to what arrives.
        const string logCols = "cursor, op_id, producer_id, seq, kind, collection, key, value, content_type, expected_version, depends_on, version, committed_at";
        ReadLog = $"SELECT {logCols} FROM (SELECT {logCols}, " +
                  "sum(coalesce(octet_length(value), 0)) OVER (ORDER BY cursor ROWS UNBOUNDED PRECEDING) AS run, row_number() OVER (ORDER BY cursor) AS rn " +
                  $"FROM {s}.log WHERE share = $1 AND cursor >= $2 ORDER BY cursor LIMIT $3) t WHERE rn = 1 OR run <= $4 ORDER BY cursor";
        for (var i = 0; i < 4; i++)
        {
            bool coll = (i & 1) != 0, after = (i & 2) != 0;
            var inner = "SELECT d.collection, d.key, l.value, l.content_type, d.version, d.cursor, " +
                        "sum(coalesce(octet_length(l.value), 0)) OVER (ORDER BY d.collection, d.key ROWS UNBOUNDED PRECEDING) AS run, " +
                        "row_number() OVER (ORDER BY d.collection, d.key) AS rn " +
                        $"FROM {s}.documents d JOIN {s}.log l ON l.share = d.share AND l.cursor = d.log_cursor WHERE d.share = $1 AND NOT d.deleted";
            var n = 4;
            if (coll) inner += $" AND d.collection = ${n++}";
            if (after) inner += $" AND (d.collection, d.key) > (${n}, ${n + 1})";
            _readDocuments[i] = $"SELECT collection, key, value, content_type, version, cursor FROM ({inner} ORDER BY d.collection, d.key LIMIT $2) t " +
                                "WHERE rn = 1 OR run <= $3 ORDER BY collection, key";
        }

        HasDocumentsAfter = $"SELECT 1 FROM {s}.documents WHERE share = $1 AND NOT deleted AND (collection, key) > ($2, $3) LIMIT 1";
        HasDocumentsAfterIn = $"SELECT 1 FROM {s}.documents WHERE share = $1 AND NOT deleted AND (collection, key) > ($2, $3) AND collection = $4 LIMIT 1";
        InsertShare = $"INSERT INTO {s}.shares(share_id, share_key, title, labels, epoch, cursor, created_at) VALUES ($1, $2, $3, $4::jsonb, 1, 0, $5) RETURNING id";
        UpdateHeadAndNotify = $"UPDATE {s}.shares SET epoch = $2, cursor = $3 WHERE id = $1 " +
                              "RETURNING pg_notify($4, share_id || ' ' || cursor::text || ' ' || epoch::text)";
        InsertCapability = $"INSERT INTO {s}.capabilities(capability_id, share, parent, secret_hash, rights, expires_at, revoked_at, note, created_at) " +
                           "VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8) RETURNING id";
        MarkRevoked = $"UPDATE {s}.capabilities SET revoked_at = $2 WHERE id = ANY($1) AND revoked_at IS NULL";
        FindOps = $"SELECT op_id, true, cursor, version, 0, '' FROM {s}.log WHERE share = $1 AND op_id = ANY($2) " +
                  $"UNION ALL SELECT op_id, false, 0::bigint, 0::bigint, reason, detail FROM {s}.rejections WHERE share = $1 AND op_id = ANY($2)";
        Producer = $"SELECT last_seq, capability FROM {s}.producers WHERE share = $1 AND producer_id = $2";
        DocumentHeads = $"SELECT d.collection, d.key, d.version, d.cursor, d.log_cursor, d.deleted FROM {s}.documents d " +
                        "JOIN unnest($2::text[], $3::text[]) AS k(collection, key) ON d.collection = k.collection AND d.key = k.key " +
                        "WHERE d.share = $1";
        InsertLog = $"INSERT INTO {s}.log(share, cursor, op_id, producer_id, seq, kind, collection, key, value, content_type, expected_version, depends_on, version, committed_at) " +
                    "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::smallint[], $7::text[], $8::text[], " +
                    "$9::bytea[], $10::text[], $11::bigint[], $12::text[], $13::bigint[], $14::timestamptz[])";
        UpsertDocuments = $"INSERT INTO {s}.documents(share, collection, key, version, cursor, log_cursor, deleted) " +
                          "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[]) " +
                          "ON CONFLICT (share, collection, key) DO UPDATE SET version = excluded.version, cursor = excluded.cursor, " +
                          "log_cursor = excluded.log_cursor, deleted = excluded.deleted";
        InsertRejections = $"INSERT INTO {s}.rejections(share, op_id, reason, detail) SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[])";
        UpsertProducers = $"INSERT INTO {s}.producers(share, producer_id, last_seq, capability) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) " +
                          "ON CONFLICT (share, producer_id) DO UPDATE SET last_seq = excluded.last_seq, capability = excluded.capability";
    }

    private readonly string[] _readDocuments = new string[4];

    public string Schema { get; }
    public string ShareById { get; }
    public string ShareByKey { get; }
    public string ShareByIdForUpdate { get; }
    public string CapabilityById { get; }
    public string CapabilityBySecret { get; }
    public string CapabilitiesOfShare { get; }
    public string ReadLog { get; }
    public string ReadDocuments(bool collection, bool after) => _readDocuments[(collection ? 1 : 0) | (after ? 2 : 0)];
    public string HasDocumentsAfter { get; }
    public string HasDocumentsAfterIn { get; }
    public string InsertShare { get; }
    public string UpdateHeadAndNotify { get; }
    public string InsertCapability { get; }
    public string MarkRevoked { get; }
    public string FindOps { get; }
    public string Producer { get; }
    public string DocumentHeads { get; }
    public string InsertLog { get; }
    public string UpsertDocuments { get; }
    public string InsertRejections { get; }
    public string UpsertProducers { get; }

    public const string BeginWrite = "BEGIN ISOLATION LEVEL READ COMMITTED";
    public const string BeginRead = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
}
