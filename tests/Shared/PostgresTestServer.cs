using System.Diagnostics;
using System.Text;
using Npgsql;

namespace ShareRpc.TestSupport;

/// <summary>
/// A PostgreSQL server for tests. With <c>SHARERPC_TEST_PG</c> set (a connection string to a server
/// where the user may CREATE DATABASE) it uses that server; otherwise it starts a throwaway cluster
/// with <c>tests/postgres/pg-cluster.sh</c> on a free loopback port and stops it at dispose or at
/// process exit. It never skips: if no server can be had, it throws with what went wrong.
/// </summary>
public sealed class PostgresTestServer : IAsyncDisposable
{
    public const string EnvVar = "SHARERPC_TEST_PG";

    private static readonly Lazy<Task<PostgresTestServer>> s_shared = new(() => StartAsync(), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly string? _script;
    private readonly string? _dir;
    private readonly int _port;
    private int _stopped;

    private PostgresTestServer(string connectionString, string? script, string? dir, int port = 0)
    {
        _port = port;
        ConnectionString = connectionString;
        _script = script;
        _dir = dir;
        if (dir is not null) AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop();
    }

    /// <summary>The server's admin connection string (database postgres).</summary>
    public string ConnectionString { get; }

    /// <summary>True when this object started (and will stop) the cluster.</summary>
    public bool OwnsCluster => _dir is not null;

    /// <summary>One server for the whole test process (started on first use, stopped at process exit).</summary>
    public static Task<PostgresTestServer> SharedAsync() => s_shared.Value;

    /// <summary>Uses <c>SHARERPC_TEST_PG</c>, or starts a throwaway cluster.</summary>
    public static async Task<PostgresTestServer> StartAsync(CancellationToken ct = default)
    {
        var fromEnv = Environment.GetEnvironmentVariable(EnvVar);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            var external = new PostgresTestServer(fromEnv, null, null);
            await external.CheckAsync(ct).ConfigureAwait(false);
            return external;
        }

        return await StartOwnAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Always a throwaway cluster of its own, even with <c>SHARERPC_TEST_PG</c> set: for tests that
    /// stop and start the database (<see cref="HaltAsync"/>, <see cref="ResumeAsync"/>), which must
    /// never stop the shared one.
    /// </summary>
    public static async Task<PostgresTestServer> StartOwnAsync(CancellationToken ct = default)
    {
        var script = FindScript();
        var errors = new StringBuilder();
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var dir = Path.Combine(Path.GetTempPath(), $"sharerpc-pg-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
            var port = Ports.Free();
            var (code, stdout, stderr) = await RunAsync(script, ["start", dir, port.ToString(System.Globalization.CultureInfo.InvariantCulture)], ct).ConfigureAwait(false);
            if (code == 0)
            {
                var cs = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
                var server = new PostgresTestServer(cs, script, dir, port);
                try
                {
                    await server.CheckAsync(ct).ConfigureAwait(false);
                    return server;
                }
                catch (Exception e)
                {
                    errors.AppendLine($"attempt {attempt}: started but cannot connect: {e.Message}");
                    await server.DisposeAsync().ConfigureAwait(false);
                    continue;
                }
            }
            errors.AppendLine($"attempt {attempt} (port {port}): exit {code}: {stderr.Trim()} {stdout.Trim()}");
            await RunAsync(script, ["stop", dir], ct).ConfigureAwait(false);
        }
        throw new InvalidOperationException(
            $"Could not start a throwaway PostgreSQL with {script} (needs PostgreSQL server binaries, e.g. apt-get install postgresql). " +
            $"Or set {EnvVar} to a connection string of a server where the user may CREATE DATABASE.\n{errors}");
    }

    /// <summary>Stops the cluster this object started, keeping its data: a database outage.</summary>
    public async Task HaltAsync()
    {
        if (_dir is null || _script is null) throw new InvalidOperationException("only a cluster of its own (StartOwnAsync) may be halted");
        var (code, _, stderr) = await RunAsync(_script, ["halt", _dir], CancellationToken.None).ConfigureAwait(false);
        if (code != 0) throw new InvalidOperationException($"pg-cluster.sh halt failed: {stderr}");
    }

    /// <summary>Starts a halted cluster again, on the same port and data.</summary>
    public async Task ResumeAsync()
    {
        if (_dir is null || _script is null) throw new InvalidOperationException("only a cluster of its own (StartOwnAsync) may be resumed");
        var (code, _, stderr) = await RunAsync(_script, ["start", _dir, _port.ToString(System.Globalization.CultureInfo.InvariantCulture)], CancellationToken.None).ConfigureAwait(false);
        if (code != 0) throw new InvalidOperationException($"pg-cluster.sh start failed: {stderr}");
    }

    private async Task CheckAsync(CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(ConnectionString);
        await c.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("SELECT 1", c);
        await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Creates a brand-new empty database and returns a connection string to it.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        var clean = new string(prefix.ToLowerInvariant().Select(ch => char.IsAsciiLetterOrDigit(ch) ? ch : '_').ToArray());
        if (clean.Length > 30) clean = clean[..30];
        var name = $"{clean}_{Guid.NewGuid():N}"[..Math.Min(clean.Length + 1 + 20, 63)];
        await using (var c = new NpgsqlConnection(ConnectionString))
        {
            await c.OpenAsync().ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", c);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/> (open connections are ended).</summary>
    public async Task DropDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        if (string.IsNullOrEmpty(name) || name == "postgres") return;
        NpgsqlConnection.ClearAllPools();
        await using var c = new NpgsqlConnection(ConnectionString);
        await c.OpenAsync().ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", c);
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }

    private void Stop()
    {
        if (_dir is null || _script is null || Interlocked.Exchange(ref _stopped, 1) != 0) return;
        NpgsqlConnection.ClearAllPools();
        try { RunAsync(_script, ["stop", _dir], CancellationToken.None).GetAwaiter().GetResult(); }
        catch (Exception) { /* best effort at exit */ }
    }

    private static string FindScript()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "tests", "postgres", "pg-cluster.sh");
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException($"tests/postgres/pg-cluster.sh not found above {AppContext.BaseDirectory}; set {EnvVar} to use an existing server");
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string script, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start bash");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            return (-1, "", "pg-cluster.sh timed out after 2 minutes");
        }
        return (p.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }
}
