using System.Diagnostics;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Grpc.Testing;
using ShareRpc.Wire;

namespace ShareRpc.InteropServer.Services;

/// <summary>
/// The server side of grpc's interop tests (doc/interop-test-descriptions.md, "Server"):
/// EmptyCall, UnaryCall, CacheableUnaryCall, StreamingOutputCall, StreamingInputCall,
/// FullDuplexCall and HalfDuplexCall, with Echo Metadata, Echo Status and interval_us.
/// TestService/UnimplementedCall and UnimplementedService are deliberately not served:
/// the interop cases unimplemented_method / unimplemented_service expect the server's own
/// "unknown method" answer (UNIMPLEMENTED).
/// </summary>
public static class InteropServices
{
    public const string EchoInitialKey = "x-grpc-test-echo-initial";
    public const string EchoTrailingKey = "x-grpc-test-echo-trailing-bin";

    /// <summary>The service definitions to pass to <c>MapGrpcService</c>.</summary>
    public static IReadOnlyList<ServerServiceDefinition> Create() =>
    [
        ServerServiceDefinition.CreateBuilder()
            .AddMethod(TestServiceMethods.EmptyCall, EmptyCall)
            .AddMethod(TestServiceMethods.UnaryCall, UnaryCall)
            .AddMethod(TestServiceMethods.CacheableUnaryCall, CacheableUnaryCall)
            .AddMethod(TestServiceMethods.StreamingOutputCall, StreamingOutputCall)
            .AddMethod(TestServiceMethods.StreamingInputCall, StreamingInputCall)
            .AddMethod(TestServiceMethods.FullDuplexCall, FullDuplexCall)
            .AddMethod(TestServiceMethods.HalfDuplexCall, HalfDuplexCall)
            .Build(),
    ];

    private static async Task<Empty> EmptyCall(Empty request, ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        return new Empty();
    }

    private static async Task<SimpleResponse> UnaryCall(SimpleRequest request, ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        EchoStatus(request.ResponseStatus);
        CheckCompression(request.ExpectCompressed, context);
        CheckPayloadType(request.ResponseType);
        return new SimpleResponse { Payload = CreatePayload(request.ResponseSize) };
    }

    private static Task<SimpleResponse> CacheableUnaryCall(SimpleRequest request, ServerCallContext context)
    {
        // The content is ignored; the payload is the current time in nanoseconds (ASCII).
        var nanos = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        var body = ByteString.CopyFrom(nanos.ToString(CultureInfo.InvariantCulture), Encoding.ASCII);
        return Task.FromResult(new SimpleResponse { Payload = new Payload { Type = PayloadType.Compressable, Body = body } });
    }

    private static async Task StreamingOutputCall(
        StreamingOutputCallRequest request, IServerStreamWriter<StreamingOutputCallResponse> responseStream, ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        EchoStatus(request.ResponseStatus);
        CheckPayloadType(request.ResponseType);
        await WriteResponsesAsync(request, responseStream, context.CancellationToken);
    }

    private static async Task<StreamingInputCallResponse> StreamingInputCall(
        IAsyncStreamReader<StreamingInputCallRequest> requestStream, ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        var total = 0;
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            CheckCompression(request.ExpectCompressed, context);
            total += request.Payload?.Body.Length ?? 0;
        }

        return new StreamingInputCallResponse { AggregatedPayloadSize = total };
    }

    private static async Task FullDuplexCall(
        IAsyncStreamReader<StreamingOutputCallRequest> requestStream,
        IServerStreamWriter<StreamingOutputCallResponse> responseStream,
        ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            EchoStatus(request.ResponseStatus);
            CheckPayloadType(request.ResponseType);
            await WriteResponsesAsync(request, responseStream, context.CancellationToken);
        }
    }

    private static async Task HalfDuplexCall(
        IAsyncStreamReader<StreamingOutputCallRequest> requestStream,
        IServerStreamWriter<StreamingOutputCallResponse> responseStream,
        ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        var requests = new List<StreamingOutputCallRequest>();
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            requests.Add(request);
        }

        foreach (var request in requests)
        {
            EchoStatus(request.ResponseStatus);
            CheckPayloadType(request.ResponseType);
            await WriteResponsesAsync(request, responseStream, context.CancellationToken);
        }
    }

    /// <summary>One response per ResponseParameters, each after its interval_us (measured from the previous one).</summary>
    private static async Task WriteResponsesAsync(
        StreamingOutputCallRequest request, IServerStreamWriter<StreamingOutputCallResponse> responseStream, CancellationToken cancellationToken)
    {
        var last = Stopwatch.GetTimestamp();
        foreach (var parameters in request.ResponseParameters)
        {
            if (parameters.IntervalUs > 0)
            {
                var remaining = TimeSpan.FromMicroseconds(parameters.IntervalUs) - Stopwatch.GetElapsedTime(last);
                if (remaining > TimeSpan.Zero)
                {
                    await Task.Delay(remaining, cancellationToken);
                }
            }

            await responseStream.WriteAsync(new StreamingOutputCallResponse { Payload = CreatePayload(parameters.Size) }, cancellationToken);
            last = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Echo Metadata: the initial key goes back in the response headers, the trailing one in the trailers.</summary>
    private static async Task EchoMetadataAsync(ServerCallContext context)
    {
        var initial = context.RequestHeaders.Get(EchoInitialKey);
        if (initial is not null)
        {
            await context.WriteResponseHeadersAsync(new Metadata { { initial.Key, initial.Value } });
        }

        var trailing = context.RequestHeaders.Get(EchoTrailingKey);
        if (trailing is not null)
        {
            context.ResponseTrailers.Add(trailing.Key, trailing.ValueBytes);
        }
    }

    /// <summary>Echo Status: a request carrying response_status ends the call with that status.</summary>
    private static void EchoStatus(Grpc.Testing.EchoStatus? status)
    {
        if (status is not null && status.Code != 0)
        {
            throw new RpcException(new Status((StatusCode)status.Code, status.Message));
        }
    }

    /// <summary>
    /// CompressedRequest: a request that expects to have been compressed fails with INVALID_ARGUMENT
    /// when the call carries no grpc-encoding (the per-message flag is not visible to handlers).
    /// </summary>
    private static void CheckCompression(BoolValue? expectCompressed, ServerCallContext context)
    {
        if (expectCompressed?.Value != true)
        {
            return;
        }

        var encoding = context.HttpContext.Request.Headers["grpc-encoding"].ToString();
        if (encoding is "" or "identity")
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "expected a compressed request, got an uncompressed one"));
        }
    }

    private static void CheckPayloadType(PayloadType type)
    {
        if (type != PayloadType.Compressable)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"unsupported response_type {type}"));
        }
    }

    private static Payload CreatePayload(int size)
    {
        if (size < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"negative payload size {size}"));
        }

        return new Payload { Type = PayloadType.Compressable, Body = UnsafeByteOperations.UnsafeWrap(new byte[size]) };
    }
}
