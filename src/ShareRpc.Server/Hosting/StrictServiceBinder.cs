using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// Wraps the binder Grpc.AspNetCore passes to a service's bind method and gives every method a
/// request marshaller that turns a request that does not parse into INVALID_ARGUMENT naming the
/// method (docs/design.md, "Wire"). Grpc.AspNetCore itself answers UNKNOWN there, and an
/// interceptor cannot help: a unary request is read before the interceptor pipeline runs. Public
/// API only: <see cref="ServiceBinderBase"/> and <see cref="Marshallers"/>.
/// </summary>
internal sealed class StrictServiceBinder(ServiceBinderBase inner) : ServiceBinderBase
{
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(Strict(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(Strict(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(Strict(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(Strict(method), handler);

    /// <summary>The same method (name, type, response marshaller) with a request deserializer that refuses bad input as a client error.</summary>
    internal static Method<TRequest, TResponse> Strict<TRequest, TResponse>(Method<TRequest, TResponse> method)
    {
        var parse = method.RequestMarshaller.ContextualDeserializer;
        var fullName = method.FullName;
        var request = Marshallers.Create(
            method.RequestMarshaller.ContextualSerializer,
            context =>
            {
                try
                {
                    return parse(context);
                }
                catch (InvalidProtocolBufferException e)
                {
                    // Invalid UTF-8 in a string field lands here too: Google.Protobuf refuses it rather than
                    // replacing bytes with U+FFFD, so two distinct ids can never collide.
                    throw new RpcException(new Status(StatusCode.InvalidArgument, $"{fullName}: the request message does not parse: {e.Message}"),
                        new Metadata { { Reasons.TrailerName, Reasons.InvalidArgument } });
                }
            });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, request, method.ResponseMarshaller);
    }
}
