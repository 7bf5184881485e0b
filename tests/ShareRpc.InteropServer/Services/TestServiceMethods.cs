using Google.Protobuf;
using Grpc.Testing;
using ShareRpc.Wire;

namespace ShareRpc.InteropServer.Services;

/// <summary>The method descriptions of grpc.testing.TestService and UnimplementedService (test.proto).</summary>
public static class TestServiceMethods
{
    public const string TestServiceName = "grpc.testing.TestService";
    public const string UnimplementedServiceName = "grpc.testing.UnimplementedService";

    public static readonly Method<Empty, Empty> EmptyCall =
        Create(MethodType.Unary, TestServiceName, "EmptyCall", Empty.Parser, Empty.Parser);

    public static readonly Method<SimpleRequest, SimpleResponse> UnaryCall =
        Create(MethodType.Unary, TestServiceName, "UnaryCall", SimpleRequest.Parser, SimpleResponse.Parser);

    public static readonly Method<SimpleRequest, SimpleResponse> CacheableUnaryCall =
        Create(MethodType.Unary, TestServiceName, "CacheableUnaryCall", SimpleRequest.Parser, SimpleResponse.Parser);

    public static readonly Method<StreamingOutputCallRequest, StreamingOutputCallResponse> StreamingOutputCall =
        Create(MethodType.ServerStreaming, TestServiceName, "StreamingOutputCall", StreamingOutputCallRequest.Parser, StreamingOutputCallResponse.Parser);

    public static readonly Method<StreamingInputCallRequest, StreamingInputCallResponse> StreamingInputCall =
        Create(MethodType.ClientStreaming, TestServiceName, "StreamingInputCall", StreamingInputCallRequest.Parser, StreamingInputCallResponse.Parser);

    public static readonly Method<StreamingOutputCallRequest, StreamingOutputCallResponse> FullDuplexCall =
        Create(MethodType.DuplexStreaming, TestServiceName, "FullDuplexCall", StreamingOutputCallRequest.Parser, StreamingOutputCallResponse.Parser);

    public static readonly Method<StreamingOutputCallRequest, StreamingOutputCallResponse> HalfDuplexCall =
        Create(MethodType.DuplexStreaming, TestServiceName, "HalfDuplexCall", StreamingOutputCallRequest.Parser, StreamingOutputCallResponse.Parser);

    /// <summary>Declared in TestService, implemented by no server.</summary>
    public static readonly Method<Empty, Empty> UnimplementedCall =
        Create(MethodType.Unary, TestServiceName, "UnimplementedCall", Empty.Parser, Empty.Parser);

    /// <summary>The one method of UnimplementedService, a service no server implements.</summary>
    public static readonly Method<Empty, Empty> UnimplementedServiceCall =
        Create(MethodType.Unary, UnimplementedServiceName, "UnimplementedCall", Empty.Parser, Empty.Parser);

    private static Method<TRequest, TResponse> Create<TRequest, TResponse>(
        MethodType type, string service, string name, MessageParser<TRequest> requestParser, MessageParser<TResponse> responseParser)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse> =>
        new(type, service, name, Marshallers.Protobuf(requestParser), Marshallers.Protobuf(responseParser));
}
