using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Pipelines;

namespace ShareRpc.Wire;

/// <summary>
/// Length-Prefixed-Message framing (grpc/grpc doc/PROTOCOL-HTTP2.md):
/// <c>Compressed-Flag (1 byte, 0 or 1) · Message-Length (4 bytes, big-endian) · Message</c>.
/// Reading works on any split of the input, so a frame may arrive one byte at a time.
/// </summary>
public static class GrpcFraming
{
    /// <summary>Bytes before every message: the flag and the length.</summary>
    public const int HeaderBytes = 5;

    /// <summary>
    /// Takes one whole frame off the front of <paramref name="buffer"/>. False when the frame
    /// is not complete yet (nothing consumed). Throws RESOURCE_EXHAUSTED as soon as a length
    /// prefix says more than <paramref name="maxMessageBytes"/>, before any of it is buffered.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxMessageBytes, out bool compressed, out ReadOnlySequence<byte> payload)
    {
        compressed = false;
        payload = default;
        if (buffer.Length < HeaderBytes)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[HeaderBytes];
        buffer.Slice(0, HeaderBytes).CopyTo(header);
        var flag = header[0];
        if (flag > 1)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"Invalid compressed-flag {flag} in a gRPC message frame: only 0 and 1 are allowed."));
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageBytes)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Received message of {length} bytes exceeds the limit of {maxMessageBytes} bytes."));
        }

        if (buffer.Length < HeaderBytes + length)
        {
            return false;
        }

        compressed = flag == 1;
        payload = buffer.Slice(HeaderBytes, length);
        buffer = buffer.Slice(payload.End);
        return true;
    }

    /// <summary>Writes the five header bytes.</summary>
    public static void WriteHeader(Span<byte> destination, bool compressed, int length)
    {
        destination[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>Frames one uncompressed message into <paramref name="writer"/>; RESOURCE_EXHAUSTED over the limit.</summary>
    public static void WriteMessage<T>(IBufferWriter<byte> writer, T message, Marshaller<T> marshaller, int maxMessageBytes)
    {
        if (marshaller.Sizer is { } sizer)
        {
            var size = sizer(message);
            CheckSendSize(size, maxMessageBytes);
            WriteHeader(writer.GetSpan(HeaderBytes), false, size);
            writer.Advance(HeaderBytes);
            marshaller.Serializer(message, writer);
            return;
        }

        var scratch = new ArrayBufferWriter<byte>();
        marshaller.Serializer(message, scratch);
        CheckSendSize(scratch.WrittenCount, maxMessageBytes);
        WriteHeader(writer.GetSpan(HeaderBytes), false, scratch.WrittenCount);
        writer.Advance(HeaderBytes);
        writer.Write(scratch.WrittenSpan);
    }

    /// <summary>Frames one message into a new array (for single-message requests).</summary>
    public static byte[] FrameToArray<T>(T message, Marshaller<T> marshaller, int maxMessageBytes)
    {
        var w = new ArrayBufferWriter<byte>(256);
        WriteMessage(w, message, marshaller, maxMessageBytes);
        return w.WrittenSpan.ToArray();
    }

    private static void CheckSendSize(int size, int maxMessageBytes)
    {
        if (size > maxMessageBytes)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Sending message of {size} bytes exceeds the limit of {maxMessageBytes} bytes."));
        }
    }
}

/// <summary>How one side reads messages: limits, the negotiated encoding, and whose fault a bad message is.</summary>
internal sealed record MessageReadOptions(int MaxMessageBytes, string? Encoding, bool IsServer, string MethodName);

/// <summary>Reads framed messages from a pipe; shared by the server (request body) and the client (response body).</summary>
internal static class MessageReader
{
    /// <summary>Returns (true, message), or (false, default) at a clean end of stream.</summary>
    public static async ValueTask<(bool HasMessage, T Message)> ReadAsync<T>(PipeReader reader, Marshaller<T> marshaller, MessageReadOptions options, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (TryTake(reader, result, marshaller, options, out var message))
            {
                return (true, message);
            }

            var buffer = result.Buffer;
            if (result.IsCompleted)
            {
                var left = buffer.Length;
                reader.AdvanceTo(buffer.End);
                if (left == 0)
                {
                    return (false, default!);
                }

                // The peer ended its stream in the middle of a frame.
                throw new RpcException(new Status(
                    options.IsServer ? StatusCode.InvalidArgument : StatusCode.Internal,
                    $"Incomplete message for {options.MethodName}: the stream ended with {left} bytes of a frame."));
            }

            // All of it examined: wait for more bytes.
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>A message already in the pipe's buffer, without waiting for more bytes.</summary>
    public static bool TryReadBuffered<T>(PipeReader reader, Marshaller<T> marshaller, MessageReadOptions options, out T message)
    {
        message = default!;
        if (!reader.TryRead(out var result))
        {
            return false;
        }

        if (TryTake(reader, result, marshaller, options, out message))
        {
            return true;
        }

        // Nothing consumed or examined; the next ReadAsync sees it again (and reports a truncated end).
        reader.AdvanceTo(result.Buffer.Start);
        return false;
    }

    /// <summary>
    /// Takes one whole message off the front of a read result and advances past it; false (nothing
    /// advanced) when the frame is incomplete. On an error the reader is advanced and it throws.
    /// </summary>
    private static bool TryTake<T>(PipeReader reader, ReadResult result, Marshaller<T> marshaller, MessageReadOptions options, out T message)
    {
        message = default!;
        var buffer = result.Buffer;
        bool compressed;
        ReadOnlySequence<byte> payload;
        try
        {
            if (!GrpcFraming.TryReadFrame(ref buffer, options.MaxMessageBytes, out compressed, out payload))
            {
                return false;
            }
        }
        catch
        {
            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            throw;
        }

        try
        {
            message = Deserialize(payload, compressed, marshaller, options);
        }
        finally
        {
            reader.AdvanceTo(buffer.Start);
        }

        return true;
    }

    private static T Deserialize<T>(ReadOnlySequence<byte> payload, bool compressed, Marshaller<T> marshaller, MessageReadOptions options)
    {
        if (compressed)
        {
            // PROTOCOL-HTTP2.md: a compressed flag with no grpc-encoding (or identity) is a protocol error.
            if (options.Encoding is null or "identity")
            {
                throw new RpcException(new Status(StatusCode.Internal, "Received a compressed message but no grpc-encoding was negotiated."));
            }

            payload = new ReadOnlySequence<byte>(Decompress(payload, options));
        }

        try
        {
            return marshaller.Deserializer(payload);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            // A request that does not parse is the client's error (never INTERNAL); a response that
            // does not parse is the server's.
            throw options.IsServer
                ? new RpcException(new Status(StatusCode.InvalidArgument, $"The request message for {options.MethodName} does not parse: {ex.Message}"))
                : new RpcException(new Status(StatusCode.Internal, $"The response message for {options.MethodName} does not parse: {ex.Message}"));
        }
    }

    private static byte[] Decompress(ReadOnlySequence<byte> payload, MessageReadOptions options)
    {
        using var input = new MemoryStream(payload.ToArray());
        using Stream gz = options.Encoding switch
        {
            "gzip" => new GZipStream(input, CompressionMode.Decompress),
            "deflate" => new ZLibStream(input, CompressionMode.Decompress),
            _ => throw new RpcException(new Status(StatusCode.Unimplemented, $"Message encoding '{options.Encoding}' is not supported.")),
        };
        using var output = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int n;
        while ((n = gz.Read(chunk, 0, chunk.Length)) > 0)
        {
            // The limit applies to the decompressed size too: a zip bomb is not a way around it.
            if (output.Length + n > options.MaxMessageBytes)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Decompressed message exceeds the limit of {options.MaxMessageBytes} bytes."));
            }

            output.Write(chunk, 0, n);
        }

        return output.ToArray();
    }
}
