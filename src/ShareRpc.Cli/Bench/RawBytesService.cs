using Grpc.Core;

namespace ShareRpc.Cli.Bench;

/// <summary>
/// The raw gRPC methods of the wire and naive benchmarks: byte[] in, byte[] out, no protobuf, on
/// Grpc.AspNetCore. Bound by hand (no .proto): Grpc.AspNetCore finds the bind method through the
/// attribute and each handler by its method's name.
/// </summary>
[BindServiceMethod(typeof(RawBytesService), nameof(BindService))]
internal class RawBytesService
{
    private static readonly Marshaller<byte[]> s_bytes = Marshallers.Create(static b => b, static b => b);
    private static readonly WriteOptions s_buffered = new(WriteFlags.BufferHint);

    public static readonly Method<byte[], byte[]> EchoMethod = new(MethodType.DuplexStreaming, "sharerpc.bench.Wire", nameof(Echo), s_bytes, s_bytes);
    public static readonly Method<byte[], byte[]> UnaryMethod = new(MethodType.Unary, "sharerpc.bench.Wire", nameof(Unary), s_bytes, s_bytes);
    public static readonly Method<byte[], byte[]> PutMethod = new(MethodType.Unary, "sharerpc.bench.Naive", nameof(Put), s_bytes, s_bytes);

    private readonly Func<byte[], Task<byte[]>> _put;

    public RawBytesService(Func<byte[], Task<byte[]>> put) => _put = put;

    public static void BindService(ServiceBinderBase binder, RawBytesService service)
    {
        binder.AddMethod(EchoMethod, (DuplexStreamingServerMethod<byte[], byte[]>?)null);
        binder.AddMethod(UnaryMethod, (UnaryServerMethod<byte[], byte[]>?)null);
        binder.AddMethod(PutMethod, (UnaryServerMethod<byte[], byte[]>?)null);
    }

    /// <summary>Echoes each message; one flush per read burst (a write buffers while the next message has already arrived).</summary>
    public virtual async Task Echo(IAsyncStreamReader<byte[]> requestStream, IServerStreamWriter<byte[]> responseStream, ServerCallContext context)
    {
        var more = await requestStream.MoveNext();
        while (more)
        {
            var message = requestStream.Current;
            var next = requestStream.MoveNext();
            responseStream.WriteOptions = next.IsCompleted ? s_buffered : null;
            await responseStream.WriteAsync(message);
            more = await next;
        }
    }

    public virtual Task<byte[]> Unary(byte[] request, ServerCallContext context) => Task.FromResult(request);

    public virtual Task<byte[]> Put(byte[] request, ServerCallContext context) => _put(request);
}
