using ShareRpc.Chaos.Scenarios;
using ShareRpc.Client;
using ShareRpc.Protocol.V1;

namespace ShareRpc.Chaos.Tests;

/// <summary>Bugs the chaos harness found, each pinned by a test (the DATA_LOSS stop is in ScenarioTests).</summary>
public sealed class RegressionTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Seed 705: the owner revoked three capabilities at once. Each unary call redeemed once on
    /// UNAUTHENTICATED epoch-stale, but another revoke moved the epoch again before the retry, so the
    /// caller got a spurious epoch-stale error. Now the client redeems again while the epoch keeps moving.
    /// </summary>
    [Fact]
    public async Task Concurrent_revokes_from_one_client_all_succeed_while_the_epoch_keeps_moving()
    {
        await using var server = await ChaosServer.StartAsync(_dir.File("server"), null);
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("owner.db") });
        var owner = (await client.CreateShareAsync(server.Address, "revoke-race")).SturdyRef;
        for (var round = 0; round < 6; round++)
        {
            var caps = new List<string>();
            for (var i = 0; i < 8; i++)
            {
                caps.Add((await client.DelegateAsync(owner, [Right.Read])).CapabilityId);
            }

            var revokes = await Task.WhenAll(caps.Select(c => client.RevokeAsync(owner, c)));
            Assert.Equal(caps.Order(), revokes.SelectMany(r => r.RevokedCapabilityIds).Order());
        }
    }
}
