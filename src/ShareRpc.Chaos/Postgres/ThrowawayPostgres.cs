using System.Diagnostics;
using System.Globalization;

namespace ShareRpc.Chaos.Postgres;

/// <summary>
/// A private PostgreSQL cluster for one benchmark or test run: <c>initdb</c> in a temp directory,
/// listening on 127.0.0.1 and a free port only, trust auth for loopback, no system service touched;
/// <see cref="DisposeAsync"/> stops it and deletes the directory. When run as root the server runs
/// as the <c>postgres</c> OS user (initdb refuses root). fsync stays ON unless asked otherwise, so
/// figures measured against it are durable figures.
/// </summary>
public sealed class ThrowawayPostgres : IAsyncDisposable
{
    private readonly string _binDir;
    private readonly bool _asPostgresUser;

    private ThrowawayPostgres(string binDir, string dir, int port, bool asPostgresUser)
    {
        _binDir = binDir;
        RootDirectory = dir;
        Port = port;
        _asPostgresUser = asPostgresUser;
    }

    /// <summary>The cluster's directory (data in <c>data/</c>, socket and log beside it).</summary>
    public string RootDirectory { get; }

    public int Port { get; }

    /// <summary>Connection string for the superuser <c>postgres</c> on database <paramref name="database"/>.</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port.ToString(CultureInfo.InvariantCulture)};Username=postgres;Database={database}";

    /// <summary>The newest installed PostgreSQL's bin directory, or null when none is installed.</summary>
    public static string? FindBinDirectory()
    {
        const string root = "/usr/lib/postgresql";
        if (Directory.Exists(root))
        {
            var newest = Directory.GetDirectories(root)
                .Select(d => (Dir: d, Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(d => d.Version > 0 && File.Exists(Path.Combine(d.Dir, "bin", "initdb")))
                .OrderByDescending(d => d.Version)
                .FirstOrDefault();
            if (newest.Dir is not null) return Path.Combine(newest.Dir, "bin");
        }
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(p => File.Exists(Path.Combine(p, "initdb")));
    }

    /// <summary>initdb + start on <paramref name="port"/> (0: a free one). Throws with the server's log when it cannot start.</summary>
    public static async Task<ThrowawayPostgres> StartAsync(int port = 0, bool fsync = true, CancellationToken ct = default)
    {
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH); install postgresql, or pass a connection string.");
        var asPostgres = Environment.UserName == "root";
        var dir = Directory.CreateTempSubdirectory("sharerpc-pg-").FullName;
        if (port == 0) port = Scenarios.ChildProcess.FreePort();
        var pg = new ThrowawayPostgres(bin, dir, port, asPostgres);
        try
        {
            if (asPostgres) await RunAsync("chown", ["-R", "postgres:postgres", dir], ct).ConfigureAwait(false);
            await pg.RunPgAsync("initdb", ["-D", pg.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"], ct).ConfigureAwait(false);
            var settings = string.Join(' ',
                "-p", port.ToString(CultureInfo.InvariantCulture),
                "-k", dir,
                "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=300",
                "-c", "fsync=" + (fsync ? "on" : "off"),
                "-c", "synchronous_commit=" + (fsync ? "on" : "off"));
            await pg.RunPgAsync("pg_ctl", ["-D", pg.DataDir, "-l", Path.Combine(dir, "server.log"), "-w", "-t", "60", "-o", settings, "start"], ct).ConfigureAwait(false);
            return pg;
        }
        catch
        {
            await pg.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private string DataDir => Path.Combine(RootDirectory, "data");

    private Task RunPgAsync(string tool, string[] args, CancellationToken ct)
    {
        var exe = Path.Combine(_binDir, tool);
        return _asPostgresUser ? RunAsync("runuser", ["-u", "postgres", "--", exe, .. args], ct) : RunAsync(exe, args, ct);
    }

    private static async Task RunAsync(string exe, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(exe)} {string.Join(' ', args)} exited {p.ExitCode}:\n{await stdout.ConfigureAwait(false)}{await stderr.ConfigureAwait(false)}");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (File.Exists(Path.Combine(DataDir, "postmaster.pid")))
                await RunPgAsync("pg_ctl", ["-D", DataDir, "-m", "fast", "-w", "stop"], CancellationToken.None).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Already stopped (or never started): the directory goes anyway.
        }
        try
        {
            Directory.Delete(RootDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
