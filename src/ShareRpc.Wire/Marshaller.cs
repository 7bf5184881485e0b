using System.Buffers;
using Google.Protobuf;

namespace ShareRpc.Wire;

/// <summary>
/// Turns messages into bytes and back. With a <c>sizer</c> the framer writes the length
/// prefix first and serializes straight into the transport buffer (no copy).
/// </summary>
public sealed class Marshaller<T>
{
    public Marshaller(Action<T, IBufferWriter<byte>> serializer, Func<ReadOnlySequence<byte>, T> deserializer, Func<T, int>? sizer = null)
    {
        Serializer = serializer ?? throw new ArgumentNullException(nameof(serializer));
        Deserializer = deserializer ?? throw new ArgumentNullException(nameof(deserializer));
        Sizer = sizer;
    }

    public Action<T, IBufferWriter<byte>> Serializer { get; }

    public Func<ReadOnlySequence<byte>, T> Deserializer { get; }

    public Func<T, int>? Sizer { get; }
}

/// <summary>Ready-made marshallers.</summary>
public static class Marshallers
{
    public static Marshaller<T> Protobuf<T>(MessageParser<T> parser)
        where T : IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(parser);
        return new Marshaller<T>(
            static (m, w) => m.WriteTo(w),
            parser.ParseFrom,
            static m => m.CalculateSize());
    }

    /// <summary>Raw bytes, for tests and proxies.</summary>
    public static readonly Marshaller<byte[]> Bytes = new(
        static (m, w) => w.Write(m),
        static s => s.ToArray(),
        static m => m.Length);
}
