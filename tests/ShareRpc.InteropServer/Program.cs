using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using ShareRpc.InteropServer.Client;
using ShareRpc.InteropServer.Hosting;
using ShareRpc.Wire;

namespace ShareRpc.InteropServer;

/// <summary>
/// Server:  dotnet run --project tests/ShareRpc.InteropServer -- --port N [--use_tls] [--tls-cert-out FILE]
///          prints "listening on PORT" once serving on 127.0.0.1 (port 0 picks a free one).
/// Client:  dotnet run --project tests/ShareRpc.InteropServer -- client --server_port N --test_case NAME
///          [--server_host 127.0.0.1] [--use_tls --ca_file PEM --server_host_override localhost]
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        try
        {
            return args.Length > 0 && args[0] == "client"
                ? await RunClientAsync(ParseOptions(args.AsSpan(1)))
                : await RunServerAsync(ParseOptions(args));
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            await Console.Error.WriteLineAsync(
                "usage: [--port N [--use_tls] [--tls-cert-out FILE]] | client --server_port N --test_case NAME " +
                "[--server_host H] [--use_tls --ca_file PEM --server_host_override NAME]");
            return 2;
        }
    }

    private static async Task<int> RunServerAsync(Dictionary<string, string> options)
    {
        var port = ParsePort(Require(options, "port"));
        X509Certificate2? certificate = null;
        if (IsTrue(options, "use_tls"))
        {
            certificate = DevCertificates.CreateSelfSigned();
            if (options.TryGetValue("tls-cert-out", out var certOut))
            {
                await File.WriteAllTextAsync(certOut, certificate.ExportCertificatePem());
            }
        }

        await using var host = await InteropHost.StartAsync(
            port, certificate, logging => logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        Console.WriteLine($"listening on {host.Port}");
        Console.Out.Flush();
        await host.WaitForShutdownAsync();
        return 0;
    }

    private static async Task<int> RunClientAsync(Dictionary<string, string> options)
    {
        var host = options.GetValueOrDefault("server_host", "127.0.0.1");
        var port = ParsePort(Require(options, "server_port"));
        var testCase = Require(options, "test_case");
        var channelOptions = new GrpcChannelOptions();
        string address;
        if (IsTrue(options, "use_tls"))
        {
            channelOptions.TrustedRootCertificate = X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(Require(options, "ca_file")));
            // The name checked against the certificate is the address's host name.
            address = $"https://{options.GetValueOrDefault("server_host_override", host)}:{port}";
        }
        else
        {
            address = $"http://{host}:{port}";
        }

        using var channel = GrpcChannel.ForAddress(address, channelOptions);
        try
        {
            await InteropClient.RunAsync(channel, testCase);
        }
        catch (Exception e) when (e is InteropCaseFailedException or RpcException)
        {
            await Console.Error.WriteLineAsync($"FAIL {testCase}: {e.Message}");
            return 1;
        }

        Console.WriteLine($"PASS {testCase}");
        return 0;
    }

    /// <summary>"--name value", "--name=value", or a bare "--flag" (value "true").</summary>
    private static Dictionary<string, string> ParseOptions(ReadOnlySpan<string> args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new UsageException($"unexpected argument '{arg}'");
            }

            var name = arg[2..];
            var eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                options[name[..eq]] = name[(eq + 1)..];
            }
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                options[name] = args[++i];
            }
            else
            {
                options[name] = "true";
            }
        }

        return options;
    }

    private static string Require(Dictionary<string, string> options, string name) =>
        options.TryGetValue(name, out var value) ? value : throw new UsageException($"--{name} is required");

    private static bool IsTrue(Dictionary<string, string> options, string name) =>
        options.TryGetValue(name, out var value) && value is "true" or "1" or "yes";

    private static int ParsePort(string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 0 and <= 65535
            ? port
            : throw new UsageException($"bad port '{value}'");

    private sealed class UsageException(string message) : Exception(message);
}
