using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using ShareRpc.Cli.Bench;
using ShareRpc.TestSupport;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// <c>sharerpc serve --tls-cert --tls-key</c> with a fresh self-signed certificate (SAN localhost,
/// 127.0.0.1, ::1). Clients trust exactly that certificate as their root: validation stays on.
/// </summary>
public sealed class TlsServeFixture : ServeFixture
{
    private X509Certificate2? _root;

    /// <summary>The certificate alone, as PEM: the root a client trusts (python's --ca).</summary>
    public string RootPemFile { get; private set; } = "";

    protected override string[] ServeArguments(TempDir dir)
    {
        using var certificate = SelfSignedCertificate.Create();
        var (certPem, keyPem) = SelfSignedCertificate.ExportPem(certificate);
        RootPemFile = dir.File("cert.pem");
        File.WriteAllText(RootPemFile, certPem);
        File.WriteAllText(dir.File("key.pem"), keyPem);
        _root = X509Certificate2.CreateFromPem(certPem);
        return ["--tls-cert", RootPemFile, "--tls-key", dir.File("key.pem")];
    }

    /// <summary>An https channel whose only trusted root is the server's certificate.</summary>
    public override GrpcChannel CreateChannel()
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            CustomTrustStore = { _root ?? throw new InvalidOperationException("fixture not initialized") },
        };
        return GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _root?.Dispose();
    }
}
