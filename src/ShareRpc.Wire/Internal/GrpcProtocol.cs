using Microsoft.Extensions.Primitives;

namespace ShareRpc.Wire.Internal;

/// <summary>Header names and values from PROTOCOL-HTTP2.md.</summary>
internal static class GrpcProtocol
{
    public const string ContentType = "application/grpc";
    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string TimeoutHeader = "grpc-timeout";
    public const string EncodingHeader = "grpc-encoding";
    public const string AcceptEncodingHeader = "grpc-accept-encoding";
    public const string SupportedEncodings = "identity,gzip,deflate";
    public const string UserAgent = "grpc-dotnet-sharerpc/0.1";

    /// <summary>application/grpc, or application/grpc+proto (our marshallers are protobuf).</summary>
    public static bool IsGrpcContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        var media = contentType.AsSpan();
        var semi = media.IndexOf(';');
        if (semi >= 0)
        {
            media = media[..semi];
        }

        media = media.Trim();
        return media.Equals(ContentType, StringComparison.OrdinalIgnoreCase)
            || media.Equals(ContentType + "+proto", StringComparison.OrdinalIgnoreCase);
    }

    public static bool IsSupportedEncoding(string? encoding) => encoding is null or "" or "identity" or "gzip" or "deflate";

    /// <summary>Headers the protocol owns; they never show up as custom metadata.</summary>
    public static bool IsReservedHeader(string name) =>
        name.Length == 0
        || name[0] == ':'
        || name.StartsWith("grpc-", StringComparison.OrdinalIgnoreCase)
        || name.Equals("content-type", StringComparison.OrdinalIgnoreCase)
        || name.Equals("te", StringComparison.OrdinalIgnoreCase)
        || name.Equals("host", StringComparison.OrdinalIgnoreCase)
        || name.Equals("content-length", StringComparison.OrdinalIgnoreCase)
        || name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase)
        || name.Equals("connection", StringComparison.OrdinalIgnoreCase)
        || name.Equals("date", StringComparison.OrdinalIgnoreCase)
        || name.Equals("server", StringComparison.OrdinalIgnoreCase);

    /// <summary>PROTOCOL-HTTP2.md: emit unpadded base64 for -bin values.</summary>
    public static string EncodeBinary(byte[] value) => Convert.ToBase64String(value).TrimEnd('=');

    /// <summary>Accepts padded and unpadded base64.</summary>
    public static bool TryDecodeBinary(string value, out byte[] bytes)
    {
        var s = value.Trim();
        var pad = (4 - (s.Length % 4)) % 4;
        if (pad == 3)
        {
            bytes = Array.Empty<byte>();
            return false;
        }

        try
        {
            bytes = Convert.FromBase64String(pad == 0 ? s : s + new string('=', pad));
            return true;
        }
        catch (FormatException)
        {
            bytes = Array.Empty<byte>();
            return false;
        }
    }

    /// <summary>Turns HTTP header values into metadata entries, skipping protocol headers.</summary>
    public static Metadata ToMetadata(IEnumerable<KeyValuePair<string, StringValues>> headers)
    {
        var md = new Metadata();
        foreach (var (name, values) in headers)
        {
            AddEntries(md, name, values);
        }

        return md;
    }

    public static Metadata ToMetadata(IEnumerable<KeyValuePair<string, IEnumerable<string>>> headers)
    {
        var md = new Metadata();
        foreach (var (name, values) in headers)
        {
            AddEntries(md, name, new StringValues(values.ToArray()));
        }

        return md;
    }

    private static void AddEntries(Metadata md, string name, StringValues values)
    {
        if (IsReservedHeader(name))
        {
            return;
        }

        var key = name.ToLowerInvariant();
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }

            if (key.EndsWith(Metadata.BinarySuffix, StringComparison.Ordinal))
            {
                // A -bin header may hold several comma-separated base64 values.
                foreach (var part in value.Split(','))
                {
                    if (!TryDecodeBinary(part, out var bytes))
                    {
                        throw new RpcException(new Status(StatusCode.InvalidArgument, $"Metadata '{key}' is not valid base64."));
                    }

                    md.Add(key, bytes);
                }
            }
            else
            {
                try
                {
                    md.Add(key, value);
                }
                catch (ArgumentException)
                {
                    // Not valid gRPC metadata (e.g. a browser header); it is not ours to refuse.
                }
            }
        }
    }
}
