using System.Security.Cryptography;
using System.Text.Json;
using ShareRpc.TestSupport;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// <c>buf curl</c> with no protos: without <c>--schema</c> buf asks the server's reflection service
/// for the schema, so these pass only if <c>sharerpc serve</c> serves reflection for ShareRpc and
/// grpc.health.v1 over h2c.
/// </summary>
public sealed class BufCurlTests(ServeFixture server) : IClassFixture<ServeFixture>
{
    [Fact]
    public async Task CreateShare_through_reflection_returns_a_sturdy_ref()
    {
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)); // bytes are base64 in protobuf JSON
        var json = await CurlAsync("sharerpc.v1.ShareRpc/CreateShare", $$"""{"shareKey": "buf-{{Guid.NewGuid():N}}", "ownerSecret": "{{secret}}"}""");

        Assert.StartsWith("sharerpc://", json.GetProperty("sturdyRef").GetString(), StringComparison.Ordinal);
        Assert.True(json.GetProperty("created").GetBoolean());
        // The ref buf got is a real one: the generated client redeems it.
        var live = await server.RedeemAsync(json.GetProperty("sturdyRef").GetString()!);
        Assert.Equal(json.GetProperty("shareId").GetString(), live.ShareId);
    }

    [Fact]
    public async Task Health_Check_through_reflection_is_SERVING()
    {
        var json = await CurlAsync("grpc.health.v1.Health/Check", "{}");
        Assert.Equal("SERVING", json.GetProperty("status").GetString());
    }

    private async Task<JsonElement> CurlAsync(string method, string data)
    {
        var buf = Peers.RequireBuf();
        var result = await TestProcess.RunAsync(buf,
            ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", data, $"{server.Address}/{method}"],
            Peers.RunTimeout, Peers.Dir);
        Assert.True(result.ExitCode == 0, $"buf curl {method} failed: " + result.Describe());
        return JsonDocument.Parse(result.StandardOutput).RootElement.Clone();
    }
}
