using System.CommandLine;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ShareRpc.Server.Hosting;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc serve</c>: the share server on the embedded SQLite store. Prints the address once
/// ready; Ctrl-C / SIGTERM drains (health NOT_SERVING, no new streams, in-flight batches finish,
/// open streams end with UNAVAILABLE).
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "TCP port (0: any free port, printed once ready).", DefaultValueFactory = _ => 7878 };
        var host = new Option<string>("--host") { Description = "Address to bind.", DefaultValueFactory = _ => "127.0.0.1" };
        var data = new Option<DirectoryInfo>("--data") { Description = "Data directory (SQLite file and server key).", Required = true };
        var cert = new Option<FileInfo?>("--tls-cert") { Description = "PEM certificate: serve TLS (ALPN h2)." };
        var key = new Option<FileInfo?>("--tls-key") { Description = "PEM private key for --tls-cert." };
        var creator = new Option<string?>("--creator-token") { Description = "Require this bearer token on CreateShare." };
        var endpoint = new Option<string?>("--public-endpoint") { Description = "HOST:PORT written into sturdy refs (default: the address clients dialed)." };
        var command = new Command("serve", "Run the share server.") { port, host, data, cert, key, creator, endpoint };
        command.SetAction(async (parse, ct) =>
        {
            X509Certificate2? certificate = null;
            if (parse.GetValue(cert) is { } certFile)
            {
                var keyFile = parse.GetValue(key) ?? throw new ArgumentException("--tls-cert needs --tls-key.");
                using var pem = X509Certificate2.CreateFromPemFile(certFile.FullName, keyFile.FullName);
                certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }

            await using var server = await ShareRpcServerHost.StartAsync(
                o =>
                {
                    o.DataDirectory = parse.GetValue(data)!.FullName;
                    o.CreatorToken = parse.GetValue(creator);
                    o.PublicEndpoint = parse.GetValue(endpoint);
                },
                IPAddress.Parse(parse.GetValue(host)!),
                parse.GetValue(port),
                certificate,
                builder =>
                {
                    builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
                    builder.Logging.SetMinimumLevel(LogLevel.Warning);
                    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
                },
                ct);
            Console.WriteLine($"listening on {server.Address}");
            Console.Out.Flush();
            await server.App.WaitForShutdownAsync(CancellationToken.None);
            return 0;
        });
        return command;
    }
}
