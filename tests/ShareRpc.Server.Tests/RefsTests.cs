using System.Security.Cryptography;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;

namespace ShareRpc.Server.Tests;

public class RefsTests
{
    [Fact]
    public void SturdyRef_round_trips_and_keeps_every_part()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var r = new SturdyRef("example.org", 5001, tls: true, "share_1", "cap-2", secret);
        var text = r.ToString();
        Assert.StartsWith("sharerpcs://example.org:5001/share_1/cap-2#", text);
        Assert.DoesNotContain("=", text);
        var back = SturdyRef.Parse(text);
        Assert.Equal(("example.org", 5001, true, "share_1", "cap-2"), (back.Host, back.Port, back.Tls, back.ShareId, back.CapabilityId));
        Assert.Equal(secret, back.Secret);
        Assert.Equal("https://example.org:5001", back.Address);
    }

    [Fact]
    public void SturdyRef_parses_ipv6_and_cleartext()
    {
        var r = SturdyRef.Parse(new SturdyRef("[::1]", 80, false, "s", "c", [1, 2, 3]).ToString());
        Assert.Equal("[::1]", r.Host);
        Assert.False(r.Tls);
        Assert.Equal("http://[::1]:80", r.Address);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("http://h:1/s/c#AAAA", "must start with")]
    [InlineData("sharerpc://h:1/s/c", "#SECRET")]
    [InlineData("sharerpc://h/s/c#AAAA", "HOST:PORT")]
    [InlineData("sharerpc://h:0/s/c#AAAA", "port")]
    [InlineData("sharerpc://h:99999/s/c#AAAA", "port")]
    [InlineData("sharerpc://h:1/s#AAAA", "path")]
    [InlineData("sharerpc://h:1/s/c/d#AAAA", "path")]
    [InlineData("sharerpc://h:1/s!/c#AAAA", "share id")]
    [InlineData("sharerpc://h:1/s/c#", "secret is empty")]
    [InlineData("sharerpc://h:1/s/c#A*A", "base64url")]
    public void SturdyRef_parse_errors_say_what_is_wrong(string text, string fragment)
    {
        var e = Assert.Throws<SturdyRefFormatException>(() => SturdyRef.Parse(text));
        Assert.Contains(fragment, e.Message);
        Assert.False(SturdyRef.TryParse(text, out _, out var error));
        Assert.Equal(e.Message, error);
    }

    [Fact]
    public void LiveRef_verifies_and_detects_tampering_and_expiry()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var now = DateTimeOffset.UtcNow;
        var claims = new LiveRefClaims("share1", "cap1", Rights.Read | Rights.Append, 7, now.AddMinutes(5));
        var token = LiveRef.Sign(claims, key);

        Assert.Equal(LiveRefCheck.Valid, LiveRef.Verify(token, key, now, out var back));
        Assert.Equal(claims with { ExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(claims.ExpiresAt.ToUnixTimeMilliseconds()) }, back);
        Assert.Equal(LiveRefCheck.Expired, LiveRef.Verify(token, key, now.AddMinutes(6), out _));
        Assert.Equal(LiveRefCheck.BadSignature, LiveRef.Verify(token, RandomNumberGenerator.GetBytes(32), now, out _));

        // Forge a higher epoch with the same MAC: refused.
        var forged = LiveRef.Sign(claims with { Epoch = 8 }, key).Split('.');
        var original = token.Split('.');
        Assert.Equal(LiveRefCheck.BadSignature, LiveRef.Verify($"{forged[0]}.{forged[1]}.{original[2]}", key, now, out _));
        Assert.Equal(LiveRefCheck.Malformed, LiveRef.Verify("nonsense", key, now, out _));
        Assert.Equal(LiveRefCheck.Malformed, LiveRef.Verify("srl1.!!.AAAA", key, now, out _));
    }

    [Fact]
    public void Rights_convert_both_ways_and_reject_unspecified()
    {
        Assert.True(RightsFormat.TryFromProto([Right.Read, Right.Revoke], out var rights, out _));
        Assert.Equal(Rights.Read | Rights.Revoke, rights);
        Assert.Equal([Right.Read, Right.Revoke], rights.ToProto());
        Assert.False(RightsFormat.TryFromProto([Right.Unspecified], out _, out var error));
        Assert.Contains("unspecified", error);
        Assert.True((Rights.Read).IsSubsetOf(Rights.Read | Rights.Append));
        Assert.False((Rights.Read | Rights.Delegate).IsSubsetOf(Rights.Read | Rights.Append));
    }

    [Fact]
    public void Server_key_is_created_once_with_mode_0600_and_reused()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-key-" + Guid.NewGuid().ToString("N"));
        try
        {
            var first = ServerKey.LoadOrCreate(dir);
            var second = ServerKey.LoadOrCreate(dir);
            Assert.Equal(32, first.Length);
            Assert.Equal(first, second);
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, ServerKey.FileName)));
            Assert.Single(Directory.GetFiles(dir)); // no temp file left behind
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Secrets_are_compared_by_hash()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var hash = Secrets.Hash(secret);
        Assert.True(Secrets.Matches(secret, hash));
        var other = (byte[])secret.Clone();
        other[0] ^= 1;
        Assert.False(Secrets.Matches(other, hash));
        Assert.NotEqual(secret, hash);
    }
}
