using System.Globalization;
using Npgsql;
using ShareRpc.Server.Postgres.Internal;
using ShareRpc.Server.Storage;

namespace ShareRpc.Server.Postgres;

/// <summary>
/// The PostgreSQL store: several stateless ShareRpc servers on one database (docs/postgres.md).
/// Write transactions are READ COMMITTED and serialize per share on <c>SELECT … FOR UPDATE</c> of
/// the share row; uniqueness (share key, op id and cursor per share, secret per share) is enforced
/// by constraints; a deadlock, serialization failure or uniqueness race is reported transient so
/// the group committer reruns the whole group. Read views are REPEATABLE READ READ ONLY.
/// <see cref="RunAsync"/> LISTENs for the NOTIFY every head/epoch update sends at commit.
/// </summary>
internal sealed class PostgresShareStore : IShareStore, IShareChangeFeed, IDisposable
{
    private readonly NpgsqlDataSource _writes;
    private readonly NpgsqlDataSource _reads;
    private readonly NpgsqlDataSource _listen;
    private readonly PgSql _sql;
    private readonly int _commandTimeoutSeconds;
    private int _disposed;

    private PostgresShareStore(PostgresStoreOptions options, NpgsqlDataSource writes, NpgsqlDataSource reads, NpgsqlDataSource listen)
    {
        Options = options;
        _writes = writes;
        _reads = reads;
        _listen = listen;
        _sql = new PgSql(options.Schema);
        _commandTimeoutSeconds = Seconds(options.CommandTimeout);
    }

    /// <summary>The options the store was opened with (a copy).</summary>
    public PostgresStoreOptions Options { get; }

    /// <summary>The schema version this code writes.</summary>
    public static int SchemaVersion => PgSchema.CurrentVersion;

    /// <summary>The application_name of the LISTEN connection (visible in pg_stat_activity).</summary>
    public const string ListenApplicationName = "sharerpc-listen";

    /// <summary>
    /// Connects, creates or migrates the schema (under an advisory lock, so servers starting together
    /// do not race) and returns the store. A schema newer than this code is refused
    /// (<see cref="InvalidOperationException"/>).
    /// </summary>
    public static async Task<PostgresShareStore> OpenAsync(PostgresStoreOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();
        var reads = options.MaxPoolSize - options.WriteConnections - 1;
        var writeSource = Source(options, "sharerpc", options.WriteConnections, pooling: true);
        var readSource = Source(options, "sharerpc", reads, pooling: true);
        var listenSource = Source(options, ListenApplicationName, 1, pooling: false);
        try
        {
            var c = await writeSource.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using (c.ConfigureAwait(false))
                await PgSchema.MigrateAsync(c, options.Schema, ct).ConfigureAwait(false);
            return new PostgresShareStore(options, writeSource, readSource, listenSource);
        }
        catch
        {
            await writeSource.DisposeAsync().ConfigureAwait(false);
            await readSource.DisposeAsync().ConfigureAwait(false);
            await listenSource.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static int Seconds(TimeSpan t) => Math.Max(1, (int)Math.Ceiling(t.TotalSeconds));

    private static NpgsqlDataSource Source(PostgresStoreOptions o, string applicationName, int maxPool, bool pooling)
    {
        var b = new NpgsqlConnectionStringBuilder(o.ConnectionString)
        {
            Pooling = pooling,
            MaxPoolSize = Math.Max(1, maxPool),
            Timeout = Seconds(o.ConnectTimeout),
            CommandTimeout = Seconds(o.CommandTimeout),
            Enlist = false,
        };
        if (b.MinPoolSize > b.MaxPoolSize) b.MinPoolSize = b.MaxPoolSize;
        if (string.IsNullOrEmpty(b.ApplicationName) || applicationName == ListenApplicationName) b.ApplicationName = applicationName;
        // The hot statements are few and repeated: let Npgsql prepare them on the server.
        if (b.MaxAutoPrepare == 0) b.MaxAutoPrepare = 64;
        if (b.AutoPrepareMinUsages > 2) b.AutoPrepareMinUsages = 2;
        return new NpgsqlDataSourceBuilder(b.ConnectionString).Build();
    }

    public async Task<IShareTransaction> BeginWriteAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var c = await _writes.OpenConnectionAsync(ct).ConfigureAwait(false);
        return new PgWriteTransaction(c, _sql, Options.Channel, _commandTimeoutSeconds); // BEGIN goes out with the first statement
    }

    public async Task<IShareReader> BeginReadAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var c = await _reads.OpenConnectionAsync(ct).ConfigureAwait(false);
        return new PgReader(c, _sql, PgSql.BeginRead, _commandTimeoutSeconds);
    }

    /// <summary>
    /// True for a serialization failure (40001), a deadlock (40P01) and a uniqueness race (23505:
    /// e.g. two servers creating one share_key): nothing of the group was committed, and running it
    /// again finds the other server's row.
    /// </summary>
    public bool IsTransient(Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            if (e is PostgresException { SqlState: PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.UniqueViolation })
                return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ change feed

    /// <summary>
    /// Holds one dedicated connection with <c>LISTEN &lt;schema&gt;_changes</c> and reports each
    /// notification; after every (re)connect it reports <c>ShareChange(null, 0, 0)</c> ("anything may
    /// have changed", so subscribers re-read and nothing missed while disconnected is lost). Reconnects
    /// with bounded, jittered exponential backoff; returns when <paramref name="ct"/> is cancelled.
    /// </summary>
    public async Task RunAsync(Action<ShareChange> onChange, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        var delay = Options.ListenReconnectMinDelay;
        while (!ct.IsCancellationRequested)
        {
            NpgsqlConnection? connection = null;
            try
            {
                connection = await _listen.OpenConnectionAsync(ct).ConfigureAwait(false);
                connection.Notification += (_, e) => Deliver(e.Payload, onChange);
                var listen = new NpgsqlCommand($"LISTEN {Options.Channel}", connection);
                await using (listen.ConfigureAwait(false))
                    await listen.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                delay = Options.ListenReconnectMinDelay;
                Interlocked.Increment(ref _listenConnects);
                Safe(onChange, new ShareChange(null, 0, 0));
                while (true)
                {
                    if (await connection.WaitAsync(Options.ListenPingInterval, ct).ConfigureAwait(false)) continue;
                    var ping = new NpgsqlCommand("SELECT 1", connection);
                    await using var pingScope = ping.ConfigureAwait(false);
                    await ping.ExecuteScalarAsync(ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException or IOException or OperationCanceledException)
            {
                // Lost the connection (server restart, pg_terminate_backend, network): reconnect below.
                Interlocked.Increment(ref _listenFailures);
            }
            finally
            {
                if (connection is not null)
                {
                    try { await connection.DisposeAsync().ConfigureAwait(false); }
                    catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException) { }
                }
            }
            try
            {
                var jitter = TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * delay.TotalMilliseconds / 2);
                await Task.Delay(delay + jitter, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, Options.ListenReconnectMaxDelay.Ticks));
        }
    }

    private long _listenConnects;
    private long _listenFailures;

    /// <summary>LISTEN connections established so far (tests, metrics).</summary>
    public long ListenConnects => Interlocked.Read(ref _listenConnects);

    /// <summary>LISTEN connections lost so far (tests, metrics).</summary>
    public long ListenFailures => Interlocked.Read(ref _listenFailures);

    /// <summary>Payload: "SHARE_ID CURSOR EPOCH" (share ids never contain spaces).</summary>
    internal static bool TryParse(string payload, out ShareChange change)
    {
        change = default;
        var parts = payload.Split(' ');
        if (parts.Length != 3 || parts[0].Length == 0) return false;
        if (!ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var cursor)) return false;
        if (!ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var epoch)) return false;
        change = new ShareChange(parts[0], cursor, epoch);
        return true;
    }

    private static void Deliver(string payload, Action<ShareChange> onChange)
    {
        // A payload we cannot read still means "something changed".
        Safe(onChange, TryParse(payload, out var change) ? change : new ShareChange(null, 0, 0));
    }

    private static void Safe(Action<ShareChange> onChange, ShareChange change)
    {
        try
        {
            onChange(change);
        }
        catch (Exception)
        {
            // A hint consumer's failure must not take the LISTEN connection down.
        }
    }

    // ------------------------------------------------------------------ dispose

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _writes.DisposeAsync().ConfigureAwait(false);
        await _reads.DisposeAsync().ConfigureAwait(false);
        await _listen.DisposeAsync().ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _writes.Dispose();
        _reads.Dispose();
        _listen.Dispose();
    }
}
