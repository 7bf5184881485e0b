using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Net.Client;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// One real <c>sharerpc serve</c> process (the built CLI) over h2c on a free loopback port with a
/// temp data dir, for one test class; killed at the end. <see cref="TlsServeFixture"/> serves TLS.
/// </summary>
public class ServeFixture : IAsyncLifetime
{
    private readonly TempDir _dir = new("sharerpc-conformance-");
    private ServeProcess? _server;
    private GrpcChannel? _channel;

    public ServeProcess Server => _server ?? throw new InvalidOperationException("fixture not initialized");

    /// <summary>http://127.0.0.1:PORT (https:// with TLS), as the server printed it.</summary>
    public string Address => Server.Address;

    public int Port => Server.Port;

    /// <summary>The generated client of the contract package on a Grpc.Net.Client channel (qualified: this namespace starts with ShareRpc).</summary>
    public Sharerpc.V1.ShareRpc.ShareRpcClient Client { get; private set; } = null!;

    /// <summary>A share made at start, to check after each hostile case that the server still serves.</summary>
    public string SturdyRef { get; private set; } = "";

    public async Task InitializeAsync()
    {
        _server = await ServeProcess.StartAsync(Path.Combine(_dir.Path, "data"), 0, ServeArguments(_dir));
        _channel = CreateChannel();
        Client = new Sharerpc.V1.ShareRpc.ShareRpcClient(_channel);
        SturdyRef = (await CreateShareAsync("fixture")).SturdyRef;
    }

    /// <summary>Extra <c>sharerpc serve</c> arguments; files they name go into <paramref name="dir"/>.</summary>
    protected virtual string[] ServeArguments(TempDir dir) => [];

    /// <summary>A channel that reaches the server (h2c here).</summary>
    public virtual GrpcChannel CreateChannel() => GrpcChannel.ForAddress(Address);

    public async Task<CreateShareResponse> CreateShareAsync(string keyPrefix) =>
        await Client.CreateShareAsync(new CreateShareRequest
        {
            ShareKey = $"{keyPrefix}-{Guid.NewGuid():N}",
            OwnerSecret = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)),
        }, deadline: Deadline());

    public async Task<RedeemShareResponse> RedeemAsync(string sturdyRef) =>
        await Client.RedeemShareAsync(new RedeemShareRequest { SturdyRef = sturdyRef }, deadline: Deadline());

    /// <summary>Fails unless the server answers a normal call: redeeming the share made at start.</summary>
    public async Task AssertStillServesAsync()
    {
        Assert.False(Server.Process.HasExited, "sharerpc serve exited:\n" + Server.Process.Tail());
        var live = await RedeemAsync(SturdyRef);
        Assert.NotEmpty(live.LiveRef);
    }

    /// <summary>Every call here has a deadline: a hung server fails the test instead of hanging the run.</summary>
    public static DateTime Deadline() => DateTime.UtcNow.AddSeconds(20);

    public virtual async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (_server is not null) await _server.DisposeAsync();
        _dir.Dispose();
    }
}
