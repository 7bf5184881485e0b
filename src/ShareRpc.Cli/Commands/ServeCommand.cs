using System.CommandLine;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ShareRpc.Server.Hosting;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc serve</c>: the share server on the embedded SQLite store (default) or on PostgreSQL
/// (<c>--store postgres --pg CONNSTRING</c>: several servers on one database, docs/deploy-postgres.md). Prints the address once
/// ready; Ctrl-C / SIGTERM drains (health NOT_SERVING, no new streams, in-flight batches finish,
/// open streams end with UNAVAILABLE).
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "TCP port (0: any free port, printed once ready).", DefaultValueFactory = _ => 7878 };
        var host = new Option<string>("--host") { Description = "Address to bind.", DefaultValueFactory = _ => "127.0.0.1" };
        var data = new Option<DirectoryInfo?>("--data") { Description = "Data directory (SQLite file and server key). Required with --store sqlite." };
        var store = new Option<string>("--store") { Description = "Where shares live: sqlite (embedded, one server) or postgres (several servers on one database).", DefaultValueFactory = _ => "sqlite" };
        store.AcceptOnlyFromAmong("sqlite", "postgres");
        var pg = new Option<string?>("--pg") { Description = "PostgreSQL connection string (with --store postgres), e.g. \"Host=db;Port=5432;Database=sharerpc;Username=sharerpc\"." };
        var keyFile = new Option<FileInfo?>("--key-file") { Description = "Live-ref signing key (created 0600 if missing). Every server on one database must use the same key. Default: DATA/server.key." };
        var cert = new Option<FileInfo?>("--tls-cert") { Description = "PEM certificate: serve TLS (ALPN h2)." };
        var key = new Option<FileInfo?>("--tls-key") { Description = "PEM private key for --tls-cert." };
        var creator = new Option<string?>("--creator-token") { Description = "Require this bearer token on CreateShare." };
        var endpoint = new Option<string?>("--public-endpoint") { Description = "HOST:PORT written into sturdy refs (default: the address clients dialed)." };
        var logFormat = new Option<string>("--log-format") { Description = "Console log lines: text (one line each) or json (one JSON object per line, for machines).", DefaultValueFactory = _ => "text" };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var logLevel = new Option<LogLevel>("--log-level") { Description = "Least level logged to the console: Information shows shares, revokes, fences and drains (docs/operate.md).", DefaultValueFactory = _ => LogLevel.Warning };
        var otlp = ServeTelemetry.EndpointOption("Export logs, metrics and traces by OTLP to this collector (e.g. http://127.0.0.1:4317). Nothing is exported without it.");
        var otlpProtocol = new Option<string>("--otlp-protocol") { Description = "OTLP over grpc (port 4317) or http/protobuf (port 4318).", DefaultValueFactory = _ => "grpc" };
        otlpProtocol.AcceptOnlyFromAmong("grpc", "http/protobuf");
        var command = new Command("serve", "Run the share server.") { port, host, data, store, pg, keyFile, cert, key, creator, endpoint, logFormat, logLevel, otlp, otlpProtocol };
        command.SetAction(async (parse, ct) =>
        {
            X509Certificate2? certificate = null;
            if (parse.GetValue(cert) is { } certFile)
            {
                var keyFile = parse.GetValue(key) ?? throw new ArgumentException("--tls-cert needs --tls-key.");
                using var pem = X509Certificate2.CreateFromPemFile(certFile.FullName, keyFile.FullName);
                certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }

            var postgres = parse.GetValue(store) == "postgres";
            var dataDir = parse.GetValue(data);
            var connectionString = parse.GetValue(pg);
            var keyPath = parse.GetValue(keyFile);
            if (postgres && string.IsNullOrWhiteSpace(connectionString))
                throw new ArgumentException("--store postgres needs --pg \"Host=…;Port=…;Database=…;Username=…\".");
            if (!postgres && connectionString is not null) throw new ArgumentException("--pg is only used with --store postgres.");
            if (dataDir is null && (!postgres || keyPath is null))
                throw new ArgumentException(postgres ? "--store postgres needs --key-file (shared by every server) or --data." : "--data is required with the embedded SQLite store.");

            await using var server = await ShareRpcServerHost.StartAsync(
                o =>
                {
                    // With PostgreSQL the data directory holds only the key (when --key-file is not given).
                    o.DataDirectory = dataDir?.FullName ?? Path.GetDirectoryName(keyPath!.FullName)!;
                    o.ServerKeyFile = keyPath?.FullName;
                    o.CreatorToken = parse.GetValue(creator);
                    o.PublicEndpoint = parse.GetValue(endpoint);
                },
                IPAddress.Parse(parse.GetValue(host)!),
                parse.GetValue(port),
                certificate,
                builder =>
                {
                    ServeTelemetry.Configure(builder, parse.GetValue(logFormat)!, parse.GetValue(logLevel), parse.GetValue(otlp), parse.GetValue(otlpProtocol)!);
                    // The host's "Hosting failed to start" error repeats, stack and all, the exception StartAsync
                    // throws, which Program.cs prints as one line (issue 13, item 12). Nothing else logs there.
                    builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
                    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
                    if (postgres) builder.Services.AddShareRpcPostgres(connectionString!);
                    builder.Services.AddShareRpcViewer(); // /view (docs/viewer.md)
                },
                ct);
            Console.WriteLine($"listening on {server.Address}");
            Console.WriteLine($"viewer at {server.Address}{ShareRpc.Viewer.ShareRpcViewer.Path}#<sturdy ref> (sharerpc delegate --rights read prints such a link)");
            Console.Out.Flush();
            await server.App.WaitForShutdownAsync(CancellationToken.None);
            return 0;
        });
        return command;
    }
}
