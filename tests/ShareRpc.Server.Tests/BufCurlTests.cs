using System.Diagnostics;
using System.Security.Cryptography;

namespace ShareRpc.Server.Tests;

/// <summary>
/// `buf curl` (a real third-party gRPC client) calls the share server through server reflection,
/// with no .proto files: the hosting maps grpc.reflection.v1 with the sharerpc.v1 descriptors.
/// </summary>
public sealed class BufCurlTests : IAsyncLifetime
{
    private LoopbackServer _s = null!;

    public async Task InitializeAsync() => _s = await LoopbackServer.StartAsync();

    public async Task DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task Buf_curl_lists_the_methods_and_creates_a_share_without_protos()
    {
        var list = await BufAsync("curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", _s.Address.ToString());
        Assert.Contains("sharerpc.v1.ShareRpc/AppendOps", list);
        Assert.Contains("sharerpc.v1.ShareRpc/RevokeCapability", list);

        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var body = $$"""{"shareKey":"buf-curl-session","ownerSecret":"{{secret}}","title":"from buf"}""";
        var url = new Uri(_s.Address, "/sharerpc.v1.ShareRpc/CreateShare").ToString();
        var created = await BufAsync("curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", body, url);
        Assert.Contains("\"sturdyRef\": \"sharerpc://", created);
        Assert.Contains("\"created\": true", created);

        // The same key and secret again: the same share, created=false (JSON omits false).
        var again = await BufAsync("curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", body, url);
        Assert.DoesNotContain("\"created\"", again);
    }

    private static async Task<string> BufAsync(params string[] args)
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "ShareRpc.sln")))
        {
            root = Path.GetDirectoryName(root.TrimEnd('/')) ?? throw new InvalidOperationException("repo root not found");
        }

        var buf = Path.Combine(root, "tests", "interop", "node", "node_modules", ".bin", "buf");
        Assert.True(File.Exists(buf), $"buf is missing at {buf}: run ./test.sh (tests/interop/setup.sh installs it)");
        var psi = new ProcessStartInfo(buf) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        Assert.True(p.ExitCode == 0, $"buf {string.Join(' ', args)} failed: {await stderr}");
        return await stdout;
    }
}
