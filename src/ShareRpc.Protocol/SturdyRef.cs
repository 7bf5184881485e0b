using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Sharerpc.V1;

/// <summary>Thrown by <see cref="SturdyRef.Parse"/>; the message says what is wrong (never the secret).</summary>
public sealed class SturdyRefFormatException(string message) : FormatException(message);

/// <summary>
/// A durable capability string: <c>sharerpc://HOST:PORT/SHARE_ID/CAPABILITY_ID#SECRET</c>
/// (<c>sharerpcs://</c> over TLS), the secret in base64url without padding.
/// </summary>
public sealed class SturdyRef
{
    public const string Scheme = "sharerpc";
    public const string TlsScheme = "sharerpcs";
    public const int MaxIdLength = 128;
    public const int MaxSecretBytes = 1024;

    public SturdyRef(string host, int port, bool tls, string shareId, string capabilityId, byte[] secret)
    {
        if (string.IsNullOrEmpty(host) || host.AsSpan().IndexOfAny("/#?@ ") >= 0)
            throw new SturdyRefFormatException("sturdy ref host is empty or contains '/', '#', '?', '@' or a space");
        if (port is < 1 or > 65535) throw new SturdyRefFormatException("sturdy ref port must be 1..65535");
        CheckId(shareId, "share id");
        CheckId(capabilityId, "capability id");
        ArgumentNullException.ThrowIfNull(secret);
        if (secret.Length == 0 || secret.Length > MaxSecretBytes)
            throw new SturdyRefFormatException($"sturdy ref secret must be 1..{MaxSecretBytes} bytes");
        Host = host;
        Port = port;
        Tls = tls;
        ShareId = shareId;
        CapabilityId = capabilityId;
        Secret = secret;
    }

    /// <summary>Host name or IP literal (IPv6 in brackets, as in a URI).</summary>
    public string Host { get; }
    public int Port { get; }
    public bool Tls { get; }
    public string ShareId { get; }
    public string CapabilityId { get; }
    public byte[] Secret { get; }

    /// <summary>The gRPC address to dial: http://HOST:PORT or https://HOST:PORT.</summary>
    public string Address => $"{(Tls ? "https" : "http")}://{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>An id is 1..128 characters of [A-Za-z0-9_-].</summary>
    public static bool IsValidId(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxIdLength) return false;
        foreach (var c in id)
            if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_')) return false;
        return true;
    }

    private static void CheckId(string id, string what)
    {
        if (!IsValidId(id))
            throw new SturdyRefFormatException($"sturdy ref {what} must be 1..{MaxIdLength} characters of [A-Za-z0-9_-]");
    }

    public override string ToString()
    {
        var sb = new StringBuilder(Tls ? TlsScheme : Scheme);
        sb.Append("://").Append(Host).Append(':').Append(Port.ToString(CultureInfo.InvariantCulture))
          .Append('/').Append(ShareId).Append('/').Append(CapabilityId)
          .Append('#').Append(Base64Url.EncodeToString(Secret));
        return sb.ToString();
    }

    public static bool TryParse(string? text, out SturdyRef? result, out string? error)
    {
        try
        {
            result = Parse(text);
            error = null;
            return true;
        }
        catch (SturdyRefFormatException e)
        {
            result = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>Parses a sturdy ref; throws <see cref="SturdyRefFormatException"/> saying which part is wrong.</summary>
    public static SturdyRef Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new SturdyRefFormatException("sturdy ref is empty");
        bool tls;
        string rest;
        if (text.StartsWith(TlsScheme + "://", StringComparison.Ordinal)) { tls = true; rest = text[(TlsScheme.Length + 3)..]; }
        else if (text.StartsWith(Scheme + "://", StringComparison.Ordinal)) { tls = false; rest = text[(Scheme.Length + 3)..]; }
        else throw new SturdyRefFormatException($"sturdy ref must start with {Scheme}:// or {TlsScheme}://");

        var hash = rest.IndexOf('#');
        if (hash < 0) throw new SturdyRefFormatException("sturdy ref has no #SECRET fragment");
        var secretText = rest[(hash + 1)..];
        rest = rest[..hash];

        var slash = rest.IndexOf('/');
        if (slash < 0) throw new SturdyRefFormatException("sturdy ref has no /SHARE_ID/CAPABILITY_ID path");
        var authority = rest[..slash];
        var path = rest[(slash + 1)..];

        string host;
        string portText;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']');
            if (close < 0 || close + 1 >= authority.Length || authority[close + 1] != ':')
                throw new SturdyRefFormatException("sturdy ref host must be HOST:PORT ([IPv6]:PORT)");
            host = authority[..(close + 1)];
            portText = authority[(close + 2)..];
        }
        else
        {
            var colon = authority.LastIndexOf(':');
            if (colon <= 0) throw new SturdyRefFormatException("sturdy ref host must be HOST:PORT");
            host = authority[..colon];
            portText = authority[(colon + 1)..];
        }
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new SturdyRefFormatException("sturdy ref port must be a number 1..65535");

        var parts = path.Split('/');
        if (parts.Length != 2) throw new SturdyRefFormatException("sturdy ref path must be /SHARE_ID/CAPABILITY_ID");
        CheckId(parts[0], "share id");
        CheckId(parts[1], "capability id");

        if (secretText.Length == 0) throw new SturdyRefFormatException("sturdy ref secret is empty");
        byte[] secret;
        try
        {
            secret = Base64Url.DecodeFromChars(secretText.TrimEnd('='));
        }
        catch (FormatException)
        {
            throw new SturdyRefFormatException("sturdy ref secret is not base64url");
        }
        return new SturdyRef(host, port, tls, parts[0], parts[1], secret);
    }
}
