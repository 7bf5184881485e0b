using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;
using ShareRpcGrpc = Sharerpc.V1.ShareRpc;

namespace ShareRpc.Client.Transport;

/// <summary>Call descriptors the SDK needs beyond the generated stub.</summary>
internal static class ShareRpcMethods
{
    /// <summary>
    /// AppendOps sending pre-serialized requests: the outbox stores each sealed batch's bytes and
    /// every resend is exactly those bytes (docs/client.md, "Replay"). Same wire method as the
    /// generated one; only the request marshaller differs.
    /// </summary>
    public static readonly Method<byte[], AppendOpsResponse> AppendOpsRaw = new(
        MethodType.DuplexStreaming,
        Reasons.ServiceName,
        "AppendOps",
        Marshallers.Create(static bytes => bytes, static bytes => bytes),
        Marshallers.Create(
            static (AppendOpsResponse m, SerializationContext c) => c.Complete(m.ToByteArray()),
            static c => AppendOpsResponse.Parser.ParseFrom(c.PayloadAsReadOnlySequence())));

    /// <summary>The generated client over a channel.</summary>
    public static ShareRpcGrpc.ShareRpcClient Stub(CallInvoker invoker) => new(invoker);
}
