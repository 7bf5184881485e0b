using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ShareRpc.InteropServer.Hosting;
using ShareRpc.Wire;
using Xunit;

namespace ShareRpc.Interop.Tests;

[CollectionDefinition(Name)]
public sealed class InteropCollection : ICollectionFixture<InteropFixture>
{
    public const string Name = "interop";
}

/// <summary>
/// Shared peers for the interop tests: our TestService host in-process (h2c and TLS, port 0),
/// and the grpcio python server as a child process (h2c and TLS), started on first use.
/// Missing tools make the tests that need them fail with a message pointing at
/// tests/interop/setup.sh; nothing is skipped.
/// </summary>
public sealed class InteropFixture : IAsyncLifetime
{
    public const string Python = "/usr/bin/python3";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Lazy<Task> _pythonReady;
    private readonly Lazy<Task<ServerProcess>> _pythonH2c;
    private readonly Lazy<Task<ServerProcess>> _pythonTls;
    private InteropHost? _ourH2c;
    private InteropHost? _ourTls;

    public InteropFixture()
    {
        RepoRoot = FindRepoRoot();
        TempDir = Directory.CreateTempSubdirectory("sharerpc-interop-").FullName;
        CertificatePemFile = Path.Combine(TempDir, "cert.pem");
        KeyPemFile = Path.Combine(TempDir, "key.pem");
        _pythonReady = new Lazy<Task>(CheckPythonAsync);
        _pythonH2c = new Lazy<Task<ServerProcess>>(() => StartPythonServerAsync(tls: false));
        _pythonTls = new Lazy<Task<ServerProcess>>(() => StartPythonServerAsync(tls: true));
    }

    public string RepoRoot { get; }

    public string TempDir { get; }

    public string InteropDir => Path.Combine(RepoRoot, "tests", "interop");

    /// <summary>The self-signed certificate (SAN localhost, 127.0.0.1) every TLS server here uses.</summary>
    public X509Certificate2 Certificate { get; private set; } = null!;

    /// <summary>The certificate as PEM: the CA file a TLS client trusts.</summary>
    public string CertificatePemFile { get; }

    public string KeyPemFile { get; }

    public InteropHost OurH2cHost => _ourH2c ?? throw new InvalidOperationException("fixture not initialized");

    public InteropHost OurTlsHost => _ourTls ?? throw new InvalidOperationException("fixture not initialized");

    public async Task InitializeAsync()
    {
        Certificate = DevCertificates.CreateSelfSigned();
        await File.WriteAllTextAsync(CertificatePemFile, Certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(KeyPemFile, ExportPrivateKeyPem(Certificate));
        _ourH2c = await InteropHost.StartAsync(0);
        _ourTls = await InteropHost.StartAsync(0, Certificate);
    }

    /// <summary>The grpcio interop server (h2c or TLS), started on first use.</summary>
    public Task<ServerProcess> PythonServerAsync(bool tls) => (tls ? _pythonTls : _pythonH2c).Value;

    /// <summary>Fails with a clear message unless python with grpcio and the generated stubs are ready.</summary>
    public Task RequirePythonAsync() => _pythonReady.Value;

    /// <summary>A channel to a server here: h2c to 127.0.0.1, or TLS trusting <see cref="Certificate"/>.</summary>
    public GrpcChannel CreateChannel(int port, bool tls) =>
        tls
            ? GrpcChannel.ForAddress($"https://127.0.0.1:{port}", new GrpcChannelOptions { TrustedRootCertificate = PublicCertificate() })
            : GrpcChannel.ForAddress($"http://127.0.0.1:{port}");

    /// <summary>The path of node, or a failure naming what is missing.</summary>
    public string RequireNode()
    {
        var node = FindOnPath("node")
            ?? throw new InvalidOperationException(Missing("node is not on PATH (apt-get install nodejs npm)"));
        foreach (var package in new[] { "@grpc/grpc-js", "@grpc/proto-loader" })
        {
            if (!Directory.Exists(Path.Combine(InteropDir, "node", "node_modules", package)))
            {
                throw new InvalidOperationException(Missing($"{package} is not installed in tests/interop/node"));
            }
        }

        return node;
    }

    /// <summary>The path of the buf binary installed by npm, or a failure naming what is missing.</summary>
    public string RequireBuf()
    {
        var buf = Path.Combine(InteropDir, "node", "node_modules", ".bin", "buf");
        return File.Exists(buf) ? buf : throw new InvalidOperationException(Missing($"{buf} is missing (npm install @bufbuild/buf)"));
    }

    public async Task DisposeAsync()
    {
        foreach (var lazy in new[] { _pythonH2c, _pythonTls })
        {
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
            {
                await (await lazy.Value).DisposeAsync();
            }
        }

        if (_ourTls is not null)
        {
            await _ourTls.DisposeAsync();
        }

        if (_ourH2c is not null)
        {
            await _ourH2c.DisposeAsync();
        }

        Certificate?.Dispose();
        try
        {
            Directory.Delete(TempDir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private static string Missing(string what) =>
        $"Interop prerequisite missing: {what}. Run tests/interop/setup.sh (test.sh does) and retry.";

    private X509Certificate2 PublicCertificate() => X509CertificateLoader.LoadCertificate(Certificate.Export(X509ContentType.Cert));

    private async Task CheckPythonAsync()
    {
        if (!File.Exists(Python))
        {
            throw new InvalidOperationException(Missing($"{Python} does not exist"));
        }

        var probe = await ChildProcess.RunAsync(Python, ["-c", "import grpc, google.protobuf"], TimeSpan.FromSeconds(60));
        if (probe.ExitCode != 0)
        {
            throw new InvalidOperationException(Missing($"{Python} cannot import grpc / google.protobuf (python3-grpcio, python3-protobuf)\n{probe.Describe()}"));
        }

        var generate = await ChildProcess.RunAsync("bash", [Path.Combine(InteropDir, "python", "generate.sh")], TimeSpan.FromSeconds(120));
        if (generate.ExitCode != 0)
        {
            throw new InvalidOperationException(Missing($"python stub generation failed (protobuf-compiler, protobuf-compiler-grpc)\n{generate.Describe()}"));
        }
    }

    private async Task<ServerProcess> StartPythonServerAsync(bool tls)
    {
        await RequirePythonAsync();
        List<string> args = [Path.Combine(InteropDir, "python", "interop_server.py"), "--port", "0", "--exit_on_stdin_close"];
        if (tls)
        {
            args.AddRange(["--use_tls", "--cert", CertificatePemFile, "--key", KeyPemFile]);
        }

        return await ServerProcess.StartAsync(Python, args, StartTimeout, InteropDir);
    }

    private static string ExportPrivateKeyPem(X509Certificate2 certificate)
    {
        using AsymmetricAlgorithm key = (AsymmetricAlgorithm?)certificate.GetECDsaPrivateKey()
            ?? (AsymmetricAlgorithm?)certificate.GetRSAPrivateKey()
            ?? throw new InvalidOperationException("The certificate has no ECDSA or RSA private key.");
        return key.ExportPkcs8PrivateKeyPem();
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ShareRpc.sln")) && Directory.Exists(Path.Combine(dir.FullName, "tests", "interop")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Cannot find the repository root (ShareRpc.sln) above {AppContext.BaseDirectory}.");
    }
}
