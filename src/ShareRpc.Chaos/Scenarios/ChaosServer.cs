using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ShareRpc.Chaos.Postgres;
using ShareRpc.Server;
using ShareRpc.Server.Hosting;
using ShareRpc.Server.Postgres;
using ShareRpc.Server.Storage;
using ShareRpc.Server.Storage.Sqlite;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>
/// An in-process ShareRpc server on 127.0.0.1 (any free port) over the real wire, with fault hooks, on the
/// embedded SQLite store (default) or on PostgreSQL in a schema of its own that is dropped when it is disposed.
/// </summary>
public sealed class ChaosServer : IAsyncDisposable
{
    private readonly ShareRpcServerHost _host;
    private readonly string? _postgres;
    private readonly ServerErrorLog _errors;

    private ChaosServer(ShareRpcServerHost host, string? postgres, string? schema, ServerErrorLog errors)
    {
        _host = host;
        _postgres = postgres;
        Schema = schema;
        _errors = errors;
    }

    /// <summary>What the server logged at Error or above so far: each an exception no handler mapped to a status (a server bug).</summary>
    public IReadOnlyList<string> ServerErrors => _errors.Errors;

    public string Address => _host.Address;

    internal ShareEngine Engine => _host.Engine;

    /// <summary>The PostgreSQL schema holding this server's tables (null on SQLite); dropped by <see cref="DisposeAsync"/>.</summary>
    public string? Schema { get; }

    /// <summary>The store the engine really runs on: "sqlite" or "postgres".</summary>
    public string Store => StoreName(Engine.Store);

    /// <summary>"sqlite", "postgres", or the store's type name.</summary>
    internal static string StoreName(IShareStore store) => store switch
    {
        SqliteShareStore => "sqlite",
        PostgresShareStore => "postgres",
        _ => store.GetType().Name,
    };

    /// <summary>
    /// Starts a server on <paramref name="dataDirectory"/> (the SQLite file and the server key); <paramref name="fsync"/>
    /// false = synchronous=NORMAL. With <paramref name="postgres"/> (a connection string) the shares live in PostgreSQL
    /// instead, in <paramref name="schema"/> (default: a fresh <c>chaos_0_RANDOM</c>), and the directory holds only the key.
    /// </summary>
    public static async Task<ChaosServer> StartAsync(string dataDirectory, ServerFaultHooks? faults, bool fsync = false, Action<ShareRpcServerOptions>? configure = null,
        string? postgres = null, string? schema = null)
    {
        if (postgres is not null)
        {
            schema ??= ChaosPostgres.SchemaName(0);
        }

        var errors = new ServerErrorLog();

        try
        {
            var host = await ShareRpcServerHost.StartAsync(
                o =>
                {
                    o.DataDirectory = dataDirectory;
                    o.FsyncEveryCommit = fsync;
                    o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
                    if (faults is not null)
                    {
                        o.EnableFaultInjection(faults);
                    }

                    configure?.Invoke(o);
                },
                configureBuilder: builder =>
                {
                    builder.Logging.AddProvider(errors);
                    if (postgres is null)
                    {
                        return;
                    }

                    var parsed = PostgresStoreOptions.FromConnectionString(postgres);
                    builder.Services.AddShareRpcPostgres(o =>
                    {
                        o.ConnectionString = postgres;
                        o.MaxPoolSize = parsed.MaxPoolSize;
                        o.Schema = schema!;
                    });
                }).ConfigureAwait(false);
            return new ChaosServer(host, postgres, schema, errors);
        }
        catch when (postgres is not null)
        {
            try
            {
                await ChaosPostgres.DropSchemaAsync(postgres, schema!).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The start's own error is the one worth reporting.
            }

            throw;
        }
    }

    /// <summary>The share's whole log (cursor, op id, producer, seq of each op), its head and epoch, read straight from storage: what your checks compare against.</summary>
    public async Task<(IReadOnlyList<LoggedOp> Log, ulong Head, ulong Epoch)> ReadLogAsync(string shareId)
    {
        var (log, head, epoch) = await ReadStoredLogAsync(shareId).ConfigureAwait(false);
        return ([.. log.Select(e => new LoggedOp(e.Cursor, e.OpId, e.ProducerId, e.Seq))], head, epoch);
    }

    /// <summary>The share's whole log as stored, head and epoch (the reference the checker compares against).</summary>
    internal async Task<(IReadOnlyList<LogEntry> Log, ulong Head, ulong Epoch)> ReadStoredLogAsync(string shareId)
    {
        var reader = await Engine.Store.BeginReadAsync().ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var share = await reader.GetShareAsync(shareId).ConfigureAwait(false) ?? throw new InvalidOperationException("no share " + shareId);
        var log = await reader.ReadLogAsync(share.RowId, 1, int.MaxValue).ConfigureAwait(false);
        return (log, share.Cursor, share.Epoch);
    }

    /// <summary>Stops the server (its store closes its connections), then drops its PostgreSQL schema, if any.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            if (_postgres is not null)
            {
                await ChaosPostgres.DropSchemaAsync(_postgres, Schema!).ConfigureAwait(false);
            }
        }
    }
}

/// <summary>One applied op in a share's log: where it sits, which op, and whose seq it carried.</summary>
public sealed record LoggedOp(ulong Cursor, string OpId, string ProducerId, ulong Seq);
