using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Net.Client;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Storage.Sqlite;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Server.Tests;

/// <summary>
/// Issue 13, item 12 (the server's part): share contents on disk were world-readable (0644); a
/// client-chosen <c>:authority</c> became the host of minted sturdy refs (and <c>localhost:0</c>
/// there gave UNKNOWN); a live ref's MAC decoded leniently (<c>=</c> padding and spaces accepted).
/// </summary>
public sealed class ServerSurfaceTests
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public async Task The_database_its_wal_and_shm_and_the_key_are_owner_only_and_older_files_are_narrowed()
    {
        if (OperatingSystem.IsWindows()) return;
        var parent = Directory.CreateTempSubdirectory("sharerpc-modes-").FullName;
        var dir = Path.Combine(parent, "data");
        try
        {
            var options = new ShareRpcServerOptions { DataDirectory = dir }; // a directory the server creates
            await using (var engine = ShareEngine.OpenSqlite(options))
            {
                var created = await engine.CreateShareAsync(new CreateShareRequest { ShareKey = "k", OwnerSecret = ByteString.CopyFrom(NewSecret()) }, null, Endpoint);
                var live = await engine.RedeemAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
                await engine.AppendAsync(engine.Authenticate("Bearer " + live.LiveRef), Batch("p", Put(1, "d", "k", "secret contents")));
                var db = Path.Combine(dir, SqliteShareStore.FileName);
                foreach (var file in new[] { db, db + "-wal", db + "-shm", Path.Combine(dir, ServerKey.FileName) })
                    Assert.Equal((file, OwnerReadWrite), (file, File.GetUnixFileMode(file)));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
            }

            // A database an older server left 0644 is narrowed when the store opens it.
            var path = Path.Combine(dir, SqliteShareStore.FileName);
            File.SetUnixFileMode(path, OwnerReadWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            await using (var store = SqliteShareStore.Open(dir))
                Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(path));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(parent, true);
        }
    }

    /// <summary>Sends every request with the given <c>:authority</c>, as any client may.</summary>
    private sealed class AuthorityHandler(string authority) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Host = authority;
            return base.SendAsync(request, cancellationToken);
        }
    }

    [Theory]
    [InlineData("evil.example:443")]
    [InlineData("localhost:0")]
    [InlineData("localhost")]
    public async Task Sturdy_refs_name_the_servers_bound_address_never_the_clients_authority(string authority)
    {
        await using var s = await LoopbackServer.StartAsync();
        using var channel = GrpcChannel.ForAddress(s.Address, new GrpcChannelOptions { HttpHandler = new AuthorityHandler(authority) });
        var created = await Stub(channel).CreateShareAsync(new CreateShareRequest { ShareKey = "k", OwnerSecret = ByteString.CopyFrom(NewSecret()) });
        var sturdy = SturdyRef.Parse(created.SturdyRef);
        Assert.Equal(("127.0.0.1", s.Address.Port), (sturdy.Host, sturdy.Port));

        var live = await Stub(channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        var delegated = await Stub(channel).DelegateCapabilityAsync(new DelegateCapabilityRequest { Rights = { Right.Read }, Secret = ByteString.CopyFrom(NewSecret()) },
            Bearer(live.LiveRef));
        Assert.Equal("127.0.0.1", SturdyRef.Parse(delegated.SturdyRef).Host);
    }

    [Fact]
    public async Task A_configured_public_endpoint_is_validated_at_start_and_written_into_refs()
    {
        Assert.Throws<ArgumentException>(() => new ShareRpcServerOptions { PublicEndpoint = "localhost:0" }.Validate());
        Assert.Throws<ArgumentException>(() => new ShareRpcServerOptions { PublicEndpoint = "no-port" }.Validate());
        await using var s = await LoopbackServer.StartAsync(o => o.PublicEndpoint = "share.example:8443");
        var created = await Stub(s.Channel).CreateShareAsync(new CreateShareRequest { ShareKey = "k", OwnerSecret = ByteString.CopyFrom(NewSecret()) });
        Assert.StartsWith("sharerpc://share.example:8443/", created.SturdyRef);
    }

    [Theory]
    [InlineData("=")]        // padding
    [InlineData("==")]
    [InlineData(" ")]        // whitespace the .NET decoder skips
    [InlineData("\n")]
    [InlineData("+")]        // base64, not base64url
    [InlineData("%")]
    public void A_live_refs_mac_and_payload_decode_strictly(string junk)
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var now = DateTimeOffset.UtcNow;
        var token = LiveRef.Sign(new LiveRefClaims("share1", "cap1", Rights.Read, 1, now.AddMinutes(5)), key);
        Assert.Equal(LiveRefCheck.Valid, LiveRef.Verify(token, key, now, out _));
        var parts = token.Split('.');

        Assert.Equal(LiveRefCheck.Malformed, LiveRef.Verify(token + junk, key, now, out _));
        Assert.Equal(LiveRefCheck.Malformed, LiveRef.Verify($"{parts[0]}.{parts[1]}.{parts[2][..10]}{junk}{parts[2][10..]}", key, now, out _));
        Assert.Equal(LiveRefCheck.Malformed, LiveRef.Verify($"{parts[0]}.{parts[1]}{junk}.{parts[2]}", key, now, out _));
        var authority = new LiveRefAuthority(key, TimeProvider.System);
        var e = Assert.Throws<ShareRpcException>(() => authority.Authenticate(token + junk));
        Assert.Equal((ShareRpcStatus.Unauthenticated, Reasons.InvalidToken), (e.Status, e.Reason));
    }
}
