using ShareRpc.Server.Postgres;
using ShareRpc.Server.Storage;

// In the namespace of AddShareRpcServer, so that a host needs no using for it (docs/decisions.md, "Contract namespace").
namespace Microsoft.Extensions.DependencyInjection;

/// <summary><c>services.AddShareRpcPostgres(connectionString)</c>: run the ShareRpc server on PostgreSQL.</summary>
public static class ShareRpcPostgresServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="PostgresShareStore"/> as the <see cref="IShareStore"/> singleton, so
    /// <c>AddShareRpcServer</c> (called before or after) builds its engine on it instead of SQLite.
    /// A <c>Maximum Pool Size</c> in the connection string sets <see cref="PostgresStoreOptions.MaxPoolSize"/>.
    /// The store is opened (and the schema migrated) when the engine is first resolved; the container
    /// disposes it. Every node must share the live-ref key: set <c>ShareRpcServerOptions.ServerKeyFile</c>.
    /// </summary>
    public static IServiceCollection AddShareRpcPostgres(this IServiceCollection services, string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var parsed = PostgresStoreOptions.FromConnectionString(connectionString);
        return services.AddShareRpcPostgres(o =>
        {
            o.ConnectionString = parsed.ConnectionString;
            o.MaxPoolSize = parsed.MaxPoolSize;
        });
    }

    /// <summary>As <see cref="AddShareRpcPostgres(IServiceCollection, string)"/>, with every <see cref="PostgresStoreOptions"/> option.</summary>
    public static IServiceCollection AddShareRpcPostgres(this IServiceCollection services, Action<PostgresStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new PostgresStoreOptions();
        configure(options);
        options.Validate(); // a bad option fails at registration, not at the first request
        services.AddSingleton<IShareStore>(_ =>
            // DI factories are synchronous; open on the thread pool so no caller's context is blocked on.
            Task.Run(() => PostgresShareStore.OpenAsync(options)).GetAwaiter().GetResult());
        return services;
    }
}
