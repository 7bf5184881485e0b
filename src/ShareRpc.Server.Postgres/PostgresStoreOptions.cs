using System.Text.RegularExpressions;

namespace ShareRpc.Server.Postgres;

/// <summary>
/// Options of <see cref="PostgresShareStore"/>. Every limit names its unit. Several server
/// processes may use one database with the same <see cref="Schema"/>; each opens at most
/// <see cref="MaxPoolSize"/> connections.
/// </summary>
public sealed partial class PostgresStoreOptions
{
    /// <summary>An Npgsql connection string (Host, Port, Username, Password, Database …). Pool settings in it are overridden by the options below.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>
    /// Connections this store opens at most (connections), all kinds together: one for LISTEN, <see cref="WriteConnections"/>
    /// for the group committer, the rest for read views (subscribers, snapshots, redeem). At least 3.
    /// PostgreSQL's max_connections must cover nodes × MaxPoolSize.
    /// </summary>
    public int MaxPoolSize { get; set; } = 20;

    /// <summary>Of <see cref="MaxPoolSize"/>, connections reserved for write transactions (connections); the group committer uses one at a time.</summary>
    public int WriteConnections { get; set; } = 2;

    /// <summary>
    /// The PostgreSQL schema holding the tables (created if missing); lowercase letters, digits and '_'.
    /// The NOTIFY channel is <c>&lt;Schema&gt;_changes</c>, so deployments in different schemas do not wake each other.
    /// </summary>
    public string Schema { get; set; } = "sharerpc";

    /// <summary>How long one statement (or one batch of statements) may run before it is cancelled (time).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long opening a connection, or waiting for a pooled one, may take (time).</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The LISTEN connection checks it is alive (SELECT 1) after this long without a notification (time).</summary>
    public TimeSpan ListenPingInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>First wait before reconnecting the LISTEN connection (time); doubles per failure up to <see cref="ListenReconnectMaxDelay"/>.</summary>
    public TimeSpan ListenReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between LISTEN reconnect attempts (time).</summary>
    public TimeSpan ListenReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Options for <paramref name="connectionString"/>; a <c>Maximum Pool Size</c> written in it becomes
    /// <see cref="MaxPoolSize"/> (else the default applies — Npgsql's own default of 100 is not used).
    /// </summary>
    public static PostgresStoreOptions FromConnectionString(string connectionString)
    {
        var options = new PostgresStoreOptions { ConnectionString = connectionString };
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        foreach (var key in new[] { "Maximum Pool Size", "Max Pool Size", "MaxPoolSize" })
        {
            if (given.TryGetValue(key, out var v) && int.TryParse(Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture),
                    System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var max))
                options.MaxPoolSize = max;
        }
        return options;
    }

    /// <summary>The NOTIFY channel used by every server on this schema.</summary>
    public string Channel => Schema + "_changes";

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,40}$")]
    private static partial Regex SchemaName();

    /// <summary>Throws when an option is out of range (called by <see cref="PostgresShareStore.OpenAsync"/>).</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString)) throw new ArgumentException("ConnectionString is required", nameof(ConnectionString));
        if (MaxPoolSize < 3) throw new ArgumentOutOfRangeException(nameof(MaxPoolSize), MaxPoolSize, "MaxPoolSize must be >= 3 connections (listen + write + read)");
        if (WriteConnections < 1 || WriteConnections > MaxPoolSize - 2)
            throw new ArgumentOutOfRangeException(nameof(WriteConnections), WriteConnections, "WriteConnections must be 1 .. MaxPoolSize - 2 connections");
        if (!SchemaName().IsMatch(Schema ?? "")) throw new ArgumentException("Schema must match ^[a-z_][a-z0-9_]{0,40}$", nameof(Schema));
        Positive(CommandTimeout, nameof(CommandTimeout));
        Positive(ConnectTimeout, nameof(ConnectTimeout));
        Positive(ListenPingInterval, nameof(ListenPingInterval));
        Positive(ListenReconnectMinDelay, nameof(ListenReconnectMinDelay));
        if (ListenReconnectMaxDelay < ListenReconnectMinDelay)
            throw new ArgumentOutOfRangeException(nameof(ListenReconnectMaxDelay), "ListenReconnectMaxDelay must be >= ListenReconnectMinDelay");
    }

    private static void Positive(TimeSpan t, string name)
    {
        if (t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, t, name + " must be > 0");
    }

    internal PostgresStoreOptions Clone() => (PostgresStoreOptions)MemberwiseClone();
}
