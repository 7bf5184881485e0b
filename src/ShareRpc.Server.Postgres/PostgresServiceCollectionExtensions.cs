using Microsoft.Extensions.DependencyInjection;
using ShareRpc.Server.Storage;

namespace ShareRpc.Server.Postgres;

/// <summary><c>services.AddShareRpcPostgres(connectionString)</c>: run the ShareRpc server on PostgreSQL.</summary>
public static class PostgresServiceCollectionExtensions
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
