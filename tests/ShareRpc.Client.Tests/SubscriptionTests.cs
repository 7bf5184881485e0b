using Grpc.Core;
using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>Issue 13, item 12: a subscription to a server that never answers ends with a clear error, when asked to.</summary>
public sealed class SubscriptionTests
{
    [Fact]
    public async Task A_subscription_to_a_dead_server_gives_up_after_SubscribeGiveUpAfter_with_the_last_error()
    {
        // Nothing listens on the port: every connect is refused.
        var dead = $"sharerpc://127.0.0.1:{Ports.Free()}/share-x/cap-x#c2VjcmV0";
        await using var client = new ShareRpcClient(new ShareRpcClientOptions
        {
            SubscribeGiveUpAfter = TimeSpan.FromSeconds(1),
            InitialBackoff = TimeSpan.FromMilliseconds(20),
            MaxBackoff = TimeSpan.FromMilliseconds(200),
        });

        var ex = await Assert.ThrowsAsync<ShareRpcCallException>(async () =>
        {
            await foreach (var _ in client.SubscribeAsync(dead).WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token))
            {
            }
        });
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Contains("gave up on http://127.0.0.1:", ex.Message);
        Assert.Contains("without an answer", ex.Message);
    }

    [Fact]
    public void Give_up_after_must_be_positive_or_infinite()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new ShareRpcClient(new ShareRpcClientOptions { SubscribeGiveUpAfter = TimeSpan.Zero }));
        Assert.Contains("SubscribeGiveUpAfter must be > 0 or infinite", ex.Message);
    }
}
