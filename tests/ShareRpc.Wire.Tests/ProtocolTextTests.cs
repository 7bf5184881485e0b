namespace ShareRpc.Wire.Tests;

/// <summary>grpc-timeout, grpc-message percent-encoding and the two status maps.</summary>
public class ProtocolTextTests
{
    [Theory]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("2M", 1_200_000_000L)]
    [InlineData("3S", 30_000_000L)]
    [InlineData("4m", 40_000L)]
    [InlineData("5u", 50L)]
    [InlineData("100n", 1L)]
    [InlineData("1n", 1L)] // rounds up: a deadline is never shortened to zero
    [InlineData("99999999S", 999_999_990_000_000L)]
    public void Timeout_parses_all_six_units(string header, long ticks)
    {
        Assert.True(GrpcTimeout.TryParse(header, out var t));
        Assert.Equal(ticks, t.Ticks);
    }

    [Theory]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("10")]
    [InlineData("10s")]
    [InlineData("-1S")]
    [InlineData("123456789S")] // nine digits: over the 8-digit limit
    [InlineData("1.5S")]
    [InlineData(" 1S")]
    public void Timeout_refuses_malformed_values(string header)
    {
        Assert.False(GrpcTimeout.TryParse(header, out _));
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(999L)]
    [InlineData(10_000_000L)]
    [InlineData(36_000_000_000L)]
    [InlineData(864_000_000_000_000L)] // 1000 days
    public void Timeout_formats_within_eight_digits_and_round_trips_without_shortening(long ticks)
    {
        var text = GrpcTimeout.Format(TimeSpan.FromTicks(ticks));
        Assert.InRange(text.Length, 2, 9);
        Assert.True(GrpcTimeout.TryParse(text, out var back));
        Assert.True(back.Ticks >= ticks, $"{text} parsed to {back.Ticks} < {ticks}");
        Assert.True(back.Ticks - ticks <= Math.Max(ticks / 1_000_000, 1) * 10, $"{text} is too coarse for {ticks}");
    }

    [Theory]
    [InlineData("plain ascii", "plain ascii")]
    [InlineData("100%", "100%25")]
    [InlineData("a\r\nb", "a%0D%0Ab")]
    [InlineData("\t\0", "%09%00")]
    [InlineData("ü", "%C3%BC")]
    [InlineData("🙂", "%F0%9F%99%82")]
    public void Percent_encoding_matches_the_spec(string message, string encoded)
    {
        Assert.Equal(encoded, PercentEncoding.Encode(message));
        Assert.Equal(message, PercentEncoding.Decode(encoded));
    }

    [Theory]
    [InlineData("\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n")] // interop special_status_message
    [InlineData("%%%")]
    [InlineData("\u0001\u007f\u0080\u00ff")]
    [InlineData("\ud800 lone surrogate")]
    public void Hostile_strings_survive_a_round_trip_as_printable_ascii(string message)
    {
        var encoded = PercentEncoding.Encode(message);
        Assert.All(encoded, c => Assert.InRange(c, (char)0x20, (char)0x7E));
        var decoded = PercentEncoding.Decode(encoded);
        Assert.Equal(message.Replace("\ud800", "\ufffd"), decoded);
    }

    [Theory]
    [InlineData("%")]
    [InlineData("%4")]
    [InlineData("%ZZ")]
    [InlineData("%C3")]           // a lone UTF-8 lead byte
    [InlineData("%FF%FE")]        // bytes that are never UTF-8
    [InlineData("ok%")]
    public void Decoding_never_throws(string encoded)
    {
        var decoded = PercentEncoding.Decode(encoded);
        Assert.NotNull(decoded);
    }

    [Theory]
    [InlineData(400, StatusCode.Internal)]
    [InlineData(401, StatusCode.Unauthenticated)]
    [InlineData(403, StatusCode.PermissionDenied)]
    [InlineData(404, StatusCode.Unimplemented)]
    [InlineData(429, StatusCode.Unavailable)]
    [InlineData(502, StatusCode.Unavailable)]
    [InlineData(503, StatusCode.Unavailable)]
    [InlineData(504, StatusCode.Unavailable)]
    [InlineData(200, StatusCode.Unknown)]
    [InlineData(500, StatusCode.Unknown)]
    [InlineData(418, StatusCode.Unknown)]
    public void Http_status_maps_to_grpc_status(int http, StatusCode expected)
    {
        Assert.Equal(expected, StatusMapping.FromHttpStatus(http));
    }

    [Theory]
    [InlineData(0x0, StatusCode.Internal)]
    [InlineData(0x1, StatusCode.Internal)]
    [InlineData(0x2, StatusCode.Internal)]
    [InlineData(0x3, StatusCode.Internal)]
    [InlineData(0x4, StatusCode.Internal)]
    [InlineData(0x6, StatusCode.Internal)]
    [InlineData(0x7, StatusCode.Unavailable)]
    [InlineData(0x8, StatusCode.Cancelled)]
    [InlineData(0x9, StatusCode.Internal)]
    [InlineData(0xa, StatusCode.Internal)]
    [InlineData(0xb, StatusCode.ResourceExhausted)]
    [InlineData(0xc, StatusCode.PermissionDenied)]
    public void Rst_stream_codes_map_to_grpc_status(long code, StatusCode expected)
    {
        Assert.Equal(expected, StatusMapping.FromHttp2ErrorCode(code));
    }

    [Fact]
    public void Metadata_refuses_bad_keys_and_values()
    {
        Assert.Throws<ArgumentException>(() => new Metadata { { "bad key", "v" } });
        Assert.Throws<ArgumentException>(() => new Metadata { { "x-bin", "text for a -bin key" } });
        Assert.Throws<ArgumentException>(() => new Metadata { { "x-text", new byte[] { 1 } } });
        Assert.Throws<ArgumentException>(() => new Metadata { { "x", "line\nbreak" } });
        var md = new Metadata { { "X-Upper", "v" } };
        Assert.Equal("x-upper", md[0].Key);
    }
}
