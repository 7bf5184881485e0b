using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ShareRpc.Cli.Bench;

/// <summary>Self-signed certificates for loopback TLS in benchmarks and tests (never production).</summary>
internal static class SelfSignedCertificate
{
    /// <summary>An RSA-2048 server certificate for localhost, 127.0.0.1 and ::1, valid for a day.</summary>
    public static X509Certificate2 Create(string subjectName = "localhost")
    {
        using var rsa = RSA.Create(2048);
        var req = new CertificateRequest($"CN={subjectName}", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(subjectName);
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyCertSign, false));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new Oid("1.3.6.1.5.5.7.3.1") }, false));
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // Reload through PKCS#12 so the key is usable by SslStream on every platform.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.Exportable);
    }

    /// <summary>The certificate and its private key as PEM files (what <c>sharerpc serve --tls-cert/--tls-key</c> reads).</summary>
    public static (string CertificatePem, string KeyPem) ExportPem(X509Certificate2 certificate) =>
        (certificate.ExportCertificatePem(),
         (certificate.GetRSAPrivateKey() ?? throw new InvalidOperationException("The certificate has no RSA private key.")).ExportPkcs8PrivateKeyPem());
}
