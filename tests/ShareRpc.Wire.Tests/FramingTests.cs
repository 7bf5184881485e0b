using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace ShareRpc.Wire.Tests;

/// <summary>Length-Prefixed-Message framing, PROTOCOL-HTTP2.md, fed through every split of the input.</summary>
public class FramingTests
{
    // Two messages back to back:
    private static readonly byte[] TwoMessages =
    {
        0x00,                   // Compressed-Flag: 0 (not compressed)
        0x00, 0x00, 0x00, 0x02, // Message-Length: 2, big-endian
        0x68, 0x69,             // "hi"
        0x00,                   // Compressed-Flag: 0
        0x00, 0x00, 0x00, 0x00, // Message-Length: 0 (an empty message is legal)
    };

    // A frame whose length prefix promises more than the stream holds:
    private static readonly byte[] Truncated =
    {
        0x00,                   // Compressed-Flag: 0
        0x00, 0x00, 0x00, 0x05, // Message-Length: 5
        0x61, 0x62,             // only "ab" before the stream ends
    };

    // A length prefix over the limit (16 MiB + 1) with no payload behind it yet:
    private static readonly byte[] Oversized =
    {
        0x00,                   // Compressed-Flag: 0
        0x01, 0x00, 0x00, 0x01, // Message-Length: 16,777,217
    };

    // Compressed-Flag 1 while no grpc-encoding was negotiated:
    private static readonly byte[] CompressedWithoutEncoding =
    {
        0x01,                   // Compressed-Flag: 1
        0x00, 0x00, 0x00, 0x01, // Message-Length: 1
        0x00,
    };

    // A flag value the spec does not define:
    private static readonly byte[] BadFlag =
    {
        0x02,                   // Compressed-Flag: 2 (only 0 and 1 exist)
        0x00, 0x00, 0x00, 0x00,
    };

    public static IEnumerable<object[]> SplitPoints(int length) =>
        Enumerable.Range(0, length + 1).Select(i => new object[] { i });

    public static IEnumerable<object[]> TwoMessageSplits => SplitPoints(TwoMessages.Length);

    [Theory]
    [MemberData(nameof(TwoMessageSplits))]
    public async Task Two_messages_read_the_same_at_any_split(int split)
    {
        var messages = await ReadAllAsync(Chunks(TwoMessages, split), maxBytes: 100);
        Assert.Equal(new[] { "hi", "" }, messages);
    }

    [Fact]
    public async Task Two_messages_read_the_same_one_byte_at_a_time()
    {
        var chunks = TwoMessages.Select(b => new[] { b }).ToArray();
        Assert.Equal(new[] { "hi", "" }, await ReadAllAsync(chunks, maxBytes: 100));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public async Task A_truncated_frame_is_an_error_for_whoever_sent_it(int split)
    {
        var server = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(Chunks(Truncated, split), 100, isServer: true));
        Assert.Equal(StatusCode.InvalidArgument, server.StatusCode);
        Assert.Contains("Incomplete", server.Status.Detail);

        var client = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(Chunks(Truncated, split), 100, isServer: false));
        Assert.Equal(StatusCode.Internal, client.StatusCode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(5)]
    public async Task A_length_prefix_over_the_limit_fails_before_the_payload_arrives(int split)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(Chunks(Oversized, split), 4 * 1024 * 1024));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("16777217", ex.Status.Detail);
    }

    [Fact]
    public async Task A_compressed_flag_without_encoding_is_internal()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(new[] { CompressedWithoutEncoding }, 100));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
    }

    [Fact]
    public async Task An_undefined_flag_is_internal()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(new[] { BadFlag }, 100));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
    }

    [Fact]
    public async Task A_gzip_message_decompresses_when_negotiated()
    {
        var payload = Encoding.UTF8.GetBytes("compressed hello");
        using var ms = new MemoryStream();
        await using (var gz = new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            gz.Write(payload);
        }

        var body = ms.ToArray();
        var frame = new byte[5 + body.Length];
        GrpcFraming.WriteHeader(frame, compressed: true, body.Length);
        body.CopyTo(frame, 5);
        var messages = await ReadAllAsync(new[] { frame }, 100, encoding: "gzip");
        Assert.Equal(new[] { "compressed hello" }, messages);
    }

    [Fact]
    public void Writing_frames_a_message_with_its_big_endian_length()
    {
        var w = new ArrayBufferWriter<byte>();
        GrpcFraming.WriteMessage(w, "hi", TestServer.Utf8, 100);
        Assert.Equal(new byte[] { 0x00, 0x00, 0x00, 0x00, 0x02, 0x68, 0x69 }, w.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writing_over_the_limit_is_resource_exhausted_and_writes_nothing()
    {
        var w = new ArrayBufferWriter<byte>();
        var ex = Assert.Throws<RpcException>(() => GrpcFraming.WriteMessage(w, "toolong", TestServer.Utf8, 3));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Equal(0, w.WrittenCount);
    }

    private static byte[][] Chunks(byte[] data, int split) => new[] { data[..split], data[split..] };

    private static async Task<List<string>> ReadAllAsync(byte[][] chunks, int maxBytes, bool isServer = true, string? encoding = null)
    {
        var pipe = new Pipe();
        foreach (var c in chunks)
        {
            await pipe.Writer.WriteAsync(c);
        }

        await pipe.Writer.CompleteAsync();
        var options = new MessageReadOptions(maxBytes, encoding, isServer, "/test/Method");
        var result = new List<string>();
        while (true)
        {
            var (has, message) = await MessageReader.ReadAsync(pipe.Reader, TestServer.Utf8, options, CancellationToken.None);
            if (!has)
            {
                return result;
            }

            result.Add(message);
        }
    }
}
