using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Sharerpc.V1;

namespace ShareRpc.Server.Capabilities;

/// <summary>What a live ref asserts: who may do what on which share, under which epoch, until when.</summary>
internal sealed record LiveRefClaims(string ShareId, string CapabilityId, Rights Rights, ulong Epoch, DateTimeOffset ExpiresAt);

/// <summary>Outcome of <see cref="LiveRef.Verify"/>.</summary>
internal enum LiveRefCheck
{
    Valid,
    Malformed,
    BadSignature,
    Expired,
}

/// <summary>
/// Live ref token format: <c>srl1.PAYLOAD.MAC</c>, PAYLOAD = base64url(UTF-8 of
/// "share\ncapability\nrights\nepoch\nexpires-unix-ms"), MAC = base64url(HMAC-SHA256(key, "srl1." + PAYLOAD)).
/// Clients treat it as opaque (they may read the claims unverified, e.g. to refresh before expiry).
/// </summary>
internal static class LiveRef
{
    public const string Prefix = "srl1";
    public const int MaxTokenLength = 2048;

    public static string Sign(LiveRefClaims claims, ReadOnlySpan<byte> key)
    {
        var payload = string.Join('\n',
            claims.ShareId,
            claims.CapabilityId,
            ((int)claims.Rights).ToString(CultureInfo.InvariantCulture),
            claims.Epoch.ToString(CultureInfo.InvariantCulture),
            claims.ExpiresAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        var signed = Prefix + "." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload));
        var mac = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(signed));
        return signed + "." + Base64Url.EncodeToString(mac);
    }

    /// <summary>Checks format, signature (constant time) and expiry.</summary>
    public static LiveRefCheck Verify(string? token, ReadOnlySpan<byte> key, DateTimeOffset now, out LiveRefClaims? claims)
    {
        claims = null;
        if (token is null || token.Length > MaxTokenLength) return LiveRefCheck.Malformed;
        var lastDot = token.LastIndexOf('.');
        if (lastDot < 0 || !TryReadUnverified(token, out var parsed)) return LiveRefCheck.Malformed;
        if (!TryDecodeStrict(token.AsSpan(lastDot + 1), out var mac)) return LiveRefCheck.Malformed;
        var expected = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(token[..lastDot]));
        if (!CryptographicOperations.FixedTimeEquals(mac, expected)) return LiveRefCheck.BadSignature;
        claims = parsed;
        return parsed!.ExpiresAt <= now ? LiveRefCheck.Expired : LiveRefCheck.Valid;
    }

    /// <summary>
    /// Base64url as <see cref="Sign"/> writes it and nothing else: only <c>[A-Za-z0-9_-]</c>, no
    /// <c>=</c> padding, no whitespace, and canonical (re-encoding gives the same text). .NET's
    /// decoder skips whitespace and accepts padding, so many strings would name one token; a token
    /// has exactly one spelling.
    /// </summary>
    internal static bool TryDecodeStrict(ReadOnlySpan<char> text, out byte[] bytes)
    {
        bytes = [];
        if (text.IsEmpty || text.Length % 4 == 1) return false;
        foreach (var c in text)
            if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '_') return false;
        try { bytes = Base64Url.DecodeFromChars(text); }
        catch (FormatException) { return false; }
        return Base64Url.EncodeToString(bytes).AsSpan().SequenceEqual(text);
    }

    /// <summary>Reads the claims without checking the signature (never use this to authorize).</summary>
    public static bool TryReadUnverified(string? token, out LiveRefClaims? claims)
    {
        claims = null;
        if (token is null || token.Length > MaxTokenLength) return false;
        var parts = token.Split('.');
        if (parts.Length != 3 || parts[0] != Prefix) return false;
        if (!TryDecodeStrict(parts[1], out var payloadBytes)) return false;
        var payload = Encoding.UTF8.GetString(payloadBytes);
        var fields = payload.Split('\n');
        if (fields.Length != 5
            || !SturdyRef.IsValidId(fields[0]) || !SturdyRef.IsValidId(fields[1])
            || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var rights)
            || (rights & ~(int)Rights.All) != 0
            || !ulong.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var epoch)
            || !long.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out var expiresMs))
            return false;
        DateTimeOffset expires;
        try { expires = DateTimeOffset.FromUnixTimeMilliseconds(expiresMs); }
        catch (ArgumentOutOfRangeException) { return false; }
        claims = new LiveRefClaims(fields[0], fields[1], (Rights)rights, epoch, expires);
        return true;
    }
}
