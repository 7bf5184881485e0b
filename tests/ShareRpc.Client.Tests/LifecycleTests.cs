using Grpc.Core;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Client.Tests;

public sealed class LifecycleTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_share_the_server_forgot_is_not_found_and_recreate_makes_a_new_one_under_the_same_key()
    {
        var port = Ports.Free();
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("o.db"), InitialBackoff = TimeSpan.FromMilliseconds(10), MaxBackoff = TimeSpan.FromMilliseconds(100) });
        string first;
        await using (var server = await InProcessServer.StartAsync(port: port))
        {
            first = await client.EnsureShareAsync(server.Address, "session-forgotten");
            var w = client.OpenWriter(first);
            await w.PutAsync("c", "k", new byte[] { 1 });
            await w.FlushAsync();
        }

        // A new server on the same address with an empty data dir: the share is gone.
        await using var amnesiac = await InProcessServer.StartAsync(port: port);
        var notFound = await Assert.ThrowsAsync<ShareRpcCallException>(() => client.GetSnapshotAsync(first));
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);

        var second = await client.RecreateShareAsync(amnesiac.Address, "session-forgotten");
        Assert.NotEqual(first, second);
        Assert.Equal(second, await client.EnsureShareAsync(amnesiac.Address, "session-forgotten"));
        var writer = client.OpenWriter(second);
        var op = await writer.PutAsync("c", "k", new byte[] { 2 });
        await writer.FlushAsync();
        Assert.Equal(OpStatus.Applied, (await op.Acked).Status);
    }

    [Fact]
    public async Task Abort_revokes_the_share_and_reports_errors_to_the_callback_not_the_caller()
    {
        var errors = new List<Exception>();
        await using var server = await InProcessServer.StartAsync();
        await using var client = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("a.db"), ErrorCallback = errors.Add });
        var sturdy = await client.EnsureShareAsync(server.Address, "session-abort");
        await client.AbortAsync(server.Address, "session-abort");
        Assert.Empty(errors);
        var revoked = await Assert.ThrowsAsync<ShareRpcCallException>(() => client.RedeemAsync(sturdy));
        Assert.Equal(StatusCode.PermissionDenied, revoked.StatusCode);
        Assert.Equal(Outbox.ShareIntentState.Aborted, (await client.Outbox.GetShareIntentAsync(server.Address, "session-abort"))!.State);

        // Aborting again: the revoke now fails, and the failure goes to the callback.
        await client.AbortAsync(server.Address, "session-abort");
        Assert.Single(errors);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("litedb")]
    public async Task Asking_a_disposed_client_for_an_outcome_fails_at_once_instead_of_waiting_forever(string engine)
    {
        await using var server = await InProcessServer.StartAsync(dataDirectory: _dir.File("server"));
        var client = new ShareRpcClient(new ShareRpcClientOptions
        {
            OutboxPath = _dir.File("late.db"),
            OutboxEngine = TestEngines.ByName(engine),
        });
        var writer = client.OpenWriter(await client.EnsureShareAsync(server.Address, "late"));
        var op = await writer.PutAsync("c", "k", new byte[] { 1 });
        await writer.FlushAsync();
        await client.DisposeAsync();

        // The outcome lives in the closed outbox: the caller learns it is closed (before: it waited on the store's lock forever).
        await Assert.ThrowsAsync<ObjectDisposedException>(() => op.Acked.WaitAsync(TimeSpan.FromSeconds(30)));
        await client.DisposeAsync(); // and a second dispose returns
    }
}
