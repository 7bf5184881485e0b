using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ShareRpc.Client;
using ShareRpc.Server.Diagnostics;

namespace ShareRpc.Examples.Guides;

/// <summary>docs/guides/operate.md: the server in your own host — data directory, TLS, creator token, limits, metrics.</summary>
public static class Operate
{
    public static async Task<int> RunAsync(string dir)
    {
        var dataDir = Path.Combine(dir, "data");
        var port = FreePort();
        var creatorToken = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        using var certificate = SelfSigned();

        // region metrics
        // The server's meter is "ShareRpc.Server" (ShareRpcServerDiagnostics.MeterName). Any listener works:
        // OpenTelemetry's AddMeter, dotnet-counters, or a MeterListener as here.
        var totals = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ShareRpcServerDiagnostics.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            // sharerpc.server.ops is one counter tagged outcome = applied | duplicate | rejected.
            var name = instrument.Name;
            foreach (var tag in tags) if (tag.Key == "outcome") name += "{" + tag.Value + "}";
            totals.AddOrUpdate(name, value, (_, t) => t + value);
        });
        listener.Start();
        // endregion

        // region host
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning); // nothing logs a secret or a live ref
        builder.Services.AddShareRpcServer(o =>
        {
            o.DataDirectory = dataDir;                 // sharerpc.db (+ -wal, -shm) and server.key
            o.CreatorToken = creatorToken;             // CreateShare needs "authorization: Bearer <token>"
            o.LiveRefLifetime = TimeSpan.FromMinutes(15);
            o.Limits.MaxValueBytes = 64 * 1024;        // a larger value: RESOURCE_EXHAUSTED (limit)
            o.Limits.MaxSubscribersPerShare = 64;
        });
        builder.WebHost.ConfigureKestrel(k => k.ListenShareRpc(IPAddress.Loopback, port, certificate)); // TLS, ALPN h2
        await using var app = builder.Build();
        app.MapShareRpc(); // + grpc.health.v1.Health and server reflection
        await app.StartAsync();
        // endregion

        // region client
        // A client of a TLS server: https:// address, refs come back as sharerpcs://. A private CA
        // is trusted per channel (or install it in the system store).
        await using var client = new ShareRpcClient(new()
        {
            OutboxPath = Path.Combine(dir, "client.db"),
            CreatorToken = creatorToken,
            Channel = new() { TrustedRootCertificate = certificate },
        });
        var sturdyRef = await client.EnsureShareAsync($"https://127.0.0.1:{port}", "ops-guide");
        Console.WriteLine("sturdy ref scheme: " + sturdyRef[..sturdyRef.IndexOf(':')]);
        // endregion

        var writer = client.OpenWriter(sturdyRef);
        for (var i = 0; i < 3; i++)
        {
            await writer.PutAsync("c", "k" + i, new byte[100]);
        }

        await writer.FlushAsync();

        // region refusals
        // Without the creator token: UNAUTHENTICATED (creator-token).
        await using var stranger = new ShareRpcClient(new() { OutboxPath = Path.Combine(dir, "stranger.db"), Channel = new() { TrustedRootCertificate = certificate } });
        try
        {
            await stranger.EnsureShareAsync($"https://127.0.0.1:{port}", "not-mine");
        }
        catch (ShareRpcCallException e)
        {
            Console.WriteLine($"create without the token: {e.StatusCode} ({e.Reason})");
        }

        // A value over Limits.MaxValueBytes: RESOURCE_EXHAUSTED (limit). The writer sets that op aside (a
        // poison op) and goes on with the others; with the client's Limits set to the server's, PutAsync refuses it.
        var tooBig = await client.OpenWriter(await client.EnsureShareAsync($"https://127.0.0.1:{port}", "too-big")).PutAsync("c", "k", new byte[100 * 1024]);
        try
        {
            await tooBig.Acked;
        }
        catch (ShareRpcCallException e)
        {
            Console.WriteLine($"oversized value: {e.StatusCode} ({e.Reason})");
        }
        // endregion

        listener.RecordObservableInstruments();
        Console.WriteLine($"metrics: sharerpc.server.ops{{applied}} {totals.GetValueOrDefault("sharerpc.server.ops{applied}")}");
        var files = Directory.GetFiles(dataDir).Select(Path.GetFileName).Order().ToArray();
        Console.WriteLine("data dir: " + string.Join(" ", files));
        return totals.GetValueOrDefault("sharerpc.server.ops{applied}") >= 3 && sturdyRef.StartsWith("sharerpcs://", StringComparison.Ordinal) ? 0 : 1;
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>A throwaway certificate for 127.0.0.1 / localhost (in production: your CA's, or ACME's).</summary>
    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }
}
