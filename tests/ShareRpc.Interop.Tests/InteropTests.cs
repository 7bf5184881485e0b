using System.Text.Json;
using ShareRpc.InteropServer.Client;
using Xunit;

namespace ShareRpc.Interop.Tests;

/// <summary>
/// grpc's portable interop cases (doc/interop-test-descriptions.md) between ShareRpc.Wire and
/// grpcio in both directions, plus grpc-js and buf curl against our host.
/// </summary>
[Collection(InteropCollection.Name)]
public sealed class InteropTests(InteropFixture fixture)
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(60);

    public static TheoryData<string> AllCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in InteropClient.Cases)
        {
            data.Add(c);
        }

        return data;
    }

    public static TheoryData<string> TlsCases() => new() { "large_unary", "ping_pong" };

    [Theory]
    [MemberData(nameof(AllCases))]
    public Task Python_client_to_our_server_h2c(string testCase) => RunPythonClientAsync(testCase, tls: false);

    [Theory]
    [MemberData(nameof(TlsCases))]
    public Task Python_client_to_our_server_tls(string testCase) => RunPythonClientAsync(testCase, tls: true);

    [Theory]
    [MemberData(nameof(AllCases))]
    public async Task Our_client_to_python_server_h2c(string testCase)
    {
        var server = await fixture.PythonServerAsync(tls: false);
        await RunOurClientAsync(server.Port, tls: false, testCase, () => server.Output);
    }

    [Theory]
    [MemberData(nameof(TlsCases))]
    public async Task Our_client_to_python_server_tls(string testCase)
    {
        var server = await fixture.PythonServerAsync(tls: true);
        await RunOurClientAsync(server.Port, tls: true, testCase, () => server.Output);
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public Task Our_client_to_our_server_h2c(string testCase) =>
        RunOurClientAsync(fixture.OurH2cHost.Port, tls: false, testCase, () => "(in-process host)");

    [Fact]
    public async Task GrpcJs_unary_and_duplex_to_our_server()
    {
        var node = fixture.RequireNode();
        var result = await ChildProcess.RunAsync(
            node, [Path.Combine(fixture.InteropDir, "node", "client.js"), fixture.OurH2cHost.Port.ToString()], ProcessTimeout, fixture.InteropDir);
        Assert.True(result.ExitCode == 0, "grpc-js client failed: " + result.Describe());
        Assert.Contains("PASS unary", result.StandardOutput);
        Assert.Contains("PASS duplex", result.StandardOutput);
    }

    [Fact]
    public async Task BufCurl_unary_to_our_server()
    {
        var result = await BufCurlAsync("""{"response_size": 7, "payload": {"body": "AAAA"}}""");
        Assert.True(result.ExitCode == 0, "buf curl failed: " + result.Describe());
        using var json = JsonDocument.Parse(result.StandardOutput);
        var body = json.RootElement.GetProperty("payload").GetProperty("body").GetString();
        Assert.NotNull(body);
        Assert.Equal(new byte[7], Convert.FromBase64String(body));
    }

    [Fact]
    public async Task BufCurl_sees_the_status_our_server_sends()
    {
        var result = await BufCurlAsync("""{"response_status": {"code": 5, "message": "no such thing"}}""");
        Assert.True(result.ExitCode != 0, "buf curl succeeded, expected NOT_FOUND: " + result.Describe());
        Assert.Contains("not_found", result.StandardError);
        Assert.Contains("no such thing", result.StandardError);
    }

    private Task<ProcessResult> BufCurlAsync(string data)
    {
        var buf = fixture.RequireBuf();
        return ChildProcess.RunAsync(
            buf,
            [
                "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                "--schema", Path.Combine(fixture.InteropDir, "protos"),
                "--data", data,
                $"http://127.0.0.1:{fixture.OurH2cHost.Port}/grpc.testing.TestService/UnaryCall",
            ],
            ProcessTimeout,
            fixture.RepoRoot);
    }

    private async Task RunPythonClientAsync(string testCase, bool tls)
    {
        await fixture.RequirePythonAsync();
        var port = tls ? fixture.OurTlsHost.Port : fixture.OurH2cHost.Port;
        List<string> args =
        [
            Path.Combine(fixture.InteropDir, "python", "interop_client.py"),
            "--server_host", "127.0.0.1", "--server_port", port.ToString(), "--test_case", testCase,
        ];
        if (tls)
        {
            args.AddRange(["--use_tls", "--ca_file", fixture.CertificatePemFile, "--server_host_override", "localhost"]);
        }

        var result = await ChildProcess.RunAsync(InteropFixture.Python, args, ProcessTimeout, fixture.InteropDir);
        Assert.True(result.ExitCode == 0, $"grpcio client, case {testCase} ({(tls ? "TLS" : "h2c")}), failed: {result.Describe()}");
        Assert.Contains("PASS " + testCase, result.StandardOutput);
    }

    private async Task RunOurClientAsync(int port, bool tls, string testCase, Func<string> serverOutput)
    {
        using var channel = fixture.CreateChannel(port, tls);
        var error = await Record.ExceptionAsync(() => InteropClient.RunAsync(channel, testCase).WaitAsync(CaseTimeout));
        Assert.True(error is null, $"case {testCase} ({(tls ? "TLS" : "h2c")}) failed: {error}\n--- server output ---\n{serverOutput()}");
    }
}
