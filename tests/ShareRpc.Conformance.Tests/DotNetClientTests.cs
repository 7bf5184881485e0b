using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// Plain grpc-dotnet against <c>sharerpc serve</c>, with only the contract package's generated
/// stubs: the examples/PlainGrpcClient program as a process, and Grpc.Net.ClientFactory.
/// </summary>
public sealed class DotNetClientTests(ServeFixture server) : IClassFixture<ServeFixture>
{
    [Fact]
    public async Task PlainGrpcClient_example_creates_appends_and_subscribes()
    {
        var program = RepoPaths.Built(Path.Combine("examples", "PlainGrpcClient"), "PlainGrpcClient.dll");
        var result = await TestProcess.RunAsync(program, [server.Address], Peers.RunTimeout);

        Assert.True(result.ExitCode == 0, "PlainGrpcClient failed: " + result.Describe());
        Steps.AssertInOrder(result,
        [
            "created ",
            "redeemed: epoch 1, rights Read,Append,Delegate,Revoke",
            "ack ", // "ack BATCH_ID: Applied at 1, Applied at 2"
            "1: hello",
            "2: world",
        ]);
        Assert.Contains(": Applied at 1, Applied at 2", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClientFactory_AddGrpcClient_creates_and_redeems()
    {
        var services = new ServiceCollection();
        services.AddGrpcClient<Sharerpc.V1.ShareRpc.ShareRpcClient>(o => o.Address = new Uri(server.Address));
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<Sharerpc.V1.ShareRpc.ShareRpcClient>();

        var request = new CreateShareRequest { ShareKey = $"factory-{Guid.NewGuid():N}", OwnerSecret = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)) };
        var created = await client.CreateShareAsync(request, deadline: ServeFixture.Deadline());
        Assert.True(created.Created);
        var live = await client.RedeemShareAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef }, deadline: ServeFixture.Deadline());

        Assert.Equal(created.ShareId, live.ShareId);
        Assert.Equal([Right.Read, Right.Append, Right.Delegate, Right.Revoke], live.Rights);
        Assert.NotEmpty(live.LiveRef);
    }
}
