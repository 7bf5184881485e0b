using Grpc.Core;
using Grpc.Core.Interceptors;
using ShareRpc.Server.Capabilities;
using ShareRpc.Server.Diagnostics;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

/// <summary>
/// The one place where a ShareRpc call is authenticated and where errors become statuses, as
/// grpc-dotnet maps handler exceptions in <c>ServerCallHandlerBase</c>:
/// <list type="bullet">
/// <item>every method but CreateShare and RedeemShare needs <c>authorization: Bearer &lt;live ref&gt;</c>;
/// its signature and expiry are checked here and its claims handed to the handler
/// (<see cref="CallContextClaims.Claims"/>); the rest (epoch, revocation, rights) is checked
/// against storage inside each operation (docs/design.md, "AppendOps semantics");</item>
/// <item>a <see cref="ShareRpcException"/> becomes an <see cref="RpcException"/> with its status
/// and the <c>sharerpc-reason</c> (and <c>sharerpc-field</c>) trailers, so a client error is never
/// INTERNAL or UNKNOWN.</item>
/// </list>
/// </summary>
internal sealed class ShareRpcCallInterceptor(ShareEngine engine) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            Authenticate(context);
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            throw Refused(context, e);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            Authenticate(context);
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            throw Refused(context, e);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            Authenticate(context);
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
        }
        catch (ShareRpcException e)
        {
            throw Refused(context, e);
        }
    }

    // ShareRpc has no client-streaming method; the base class's pass-through stays for completeness.

    /// <summary>
    /// Every refusal passes here: counted and logged (rate-limited per reason) before it becomes the
    /// status. An AppendOps stream that ends revoked or epoch-stale was ended by the fence — whether
    /// the notifier stopped it or its next batch met the epoch check inside the transaction.
    /// (Subscribe streams are counted where the fence ends them, in the engine.)
    /// </summary>
    private RpcException Refused(ServerCallContext context, ShareRpcException e)
    {
        engine.Diagnostics.Refused(context.Method, e);
        if (e.Reason is Reasons.Revoked or Reasons.EpochStale && context.Method.EndsWith("/AppendOps", StringComparison.Ordinal)
            && context.UserState.TryGetValue(CallContextClaims.Key, out var c) && c is LiveRefClaims claims)
        {
            engine.Diagnostics.Fenced(StreamKinds.Append, claims, e);
        }

        return ToRpcException(e);
    }

    /// <summary>A core error as the RpcException the client sees, with <c>sharerpc-reason</c> (and <c>sharerpc-field</c>) trailers.</summary>
    internal static RpcException ToRpcException(ShareRpcException e)
    {
        var trailers = new Metadata { { Reasons.TrailerName, e.Reason } };
        if (e.Field is not null) trailers.Add(Reasons.FieldTrailerName, e.Field);
        return new RpcException(new Status((StatusCode)(int)e.Status, e.Message, e), trailers, e.Message);
    }

    private void Authenticate(ServerCallContext context)
    {
        if (NeedsLiveRef(context.Method))
            context.UserState[CallContextClaims.Key] = engine.Authenticate(context.RequestHeaders.GetValue("authorization"));
    }

    /// <summary>CreateShare (creator token, checked by the engine) and RedeemShare (the sturdy ref is the credential) take no live ref.</summary>
    private static bool NeedsLiveRef(string method) =>
        !method.EndsWith("/CreateShare", StringComparison.Ordinal) && !method.EndsWith("/RedeemShare", StringComparison.Ordinal);
}

/// <summary>The verified live ref of the current call, set by <see cref="ShareRpcCallInterceptor"/>.</summary>
internal static class CallContextClaims
{
    internal static readonly object Key = new();

    public static LiveRefClaims Claims(this ServerCallContext context) =>
        context.UserState.TryGetValue(Key, out var claims) && claims is LiveRefClaims c
            ? c
            : throw new InvalidOperationException("ShareRpcCallInterceptor did not run for " + context.Method);
}
