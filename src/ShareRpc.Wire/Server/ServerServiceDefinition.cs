using ShareRpc.Wire.Server.Internal;

namespace ShareRpc.Wire;

/// <summary>A set of methods and their handlers, bound onto Kestrel by <c>MapGrpcService</c>.</summary>
public sealed class ServerServiceDefinition
{
    private ServerServiceDefinition(IReadOnlyList<IServerMethodBinding> methods)
    {
        Methods = methods;
    }

    internal IReadOnlyList<IServerMethodBinding> Methods { get; }

    /// <summary>The full names ("/Service/Method") this definition serves.</summary>
    public IEnumerable<string> MethodNames => Methods.Select(m => m.FullName);

    public static Builder CreateBuilder() => new();

    public sealed class Builder
    {
        private readonly List<IServerMethodBinding> _methods = new();

        public Builder AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse> handler) =>
            Add(method, MethodType.Unary, handler);

        public Builder AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse> handler) =>
            Add(method, MethodType.ClientStreaming, handler);

        public Builder AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse> handler) =>
            Add(method, MethodType.ServerStreaming, handler);

        public Builder AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse> handler) =>
            Add(method, MethodType.DuplexStreaming, handler);

        public ServerServiceDefinition Build() => new(_methods.ToArray());

        private Builder Add<TRequest, TResponse>(Method<TRequest, TResponse> method, MethodType expected, Delegate handler)
        {
            ArgumentNullException.ThrowIfNull(method);
            ArgumentNullException.ThrowIfNull(handler);
            if (method.Type != expected)
            {
                throw new ArgumentException($"{method.FullName} is {method.Type}; the handler given is for {expected}.", nameof(handler));
            }

            if (_methods.Any(m => m.FullName == method.FullName))
            {
                throw new ArgumentException($"{method.FullName} is already added.", nameof(method));
            }

            _methods.Add(new ServerMethodBinding<TRequest, TResponse>(method, handler));
            return this;
        }
    }
}
