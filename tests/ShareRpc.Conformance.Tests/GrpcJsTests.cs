using ShareRpc.TestSupport;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// grpc-js with proto-loader (the contract proto, no generated code) against <c>sharerpc serve</c>
/// over h2c: CreateShare, RedeemShare and an AppendOps duplex stream with its acks.
/// </summary>
public sealed class GrpcJsTests(ServeFixture server) : IClassFixture<ServeFixture>
{
    [Fact]
    public async Task GrpcJs_creates_redeems_and_streams_AppendOps()
    {
        Peers.RequireNode();
        var result = await TestProcess.RunAsync("node", [Peers.NodeScript("contract_client.js"), $"127.0.0.1:{server.Port}"], Peers.RunTimeout, Peers.Dir);

        Assert.True(result.ExitCode == 0, "contract_client.js failed: " + result.Describe());
        Steps.AssertInOrder(result,
        [
            "PASS CreateShare",
            "PASS RedeemShare: epoch 1, rights RIGHT_READ,RIGHT_APPEND,RIGHT_DELEGATE,RIGHT_REVOKE",
            "PASS AppendOps: 2 batches, 2 acks in order, 4 ops APPLIED at cursors 1-4",
            "ALL PASS",
        ]);
    }
}
