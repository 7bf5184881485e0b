using Grpc.Core;
using Microsoft.Extensions.Hosting;
using ShareRpc.Server.Hosting;
using ShareRpcGrpc = Sharerpc.V1.ShareRpc;

namespace ShareRpc.Server.Service;

/// <summary>
/// The sharerpc.v1.ShareRpc service on Grpc.AspNetCore: the generated <c>ShareRpcBase</c>
/// overridden one RPC per file (<c>ShareRpcService.AppendOps.cs</c>, …). The handlers only adapt
/// calls to the <see cref="ShareEngine"/>; the live ref is checked and every
/// <see cref="ShareRpcException"/> becomes its gRPC status in one place,
/// <see cref="ShareRpcCallInterceptor"/>. Requests that do not parse are refused by the strict
/// binding (<see cref="StrictServiceBinder"/>) named in the attribute below.
/// </summary>
[BindServiceMethod(typeof(ShareRpcService), nameof(BindService))]
internal sealed partial class ShareRpcService(ShareEngine engine, IHostApplicationLifetime lifetime) : ShareRpcGrpc.ShareRpcBase
{
    /// <summary>
    /// Called by Grpc.AspNetCore instead of the generated binder: binds the same methods with
    /// request marshallers that answer INVALID_ARGUMENT for a request that does not parse
    /// (docs/design.md, "Wire"). Public and static because Grpc.AspNetCore finds it by reflection.
    /// </summary>
    public static void BindService(ServiceBinderBase binder, ShareRpcGrpc.ShareRpcBase service) =>
        ShareRpcGrpc.BindService(new StrictServiceBinder(binder), service);

    private ShareRpcServerOptions Options => engine.Options;

    /// <summary>
    /// The call token does not fire when the host stops (Grpc.AspNetCore): streaming handlers
    /// link ApplicationStopping themselves so that SIGTERM drains them (docs/server.md, "Drain").
    /// </summary>
    private CancellationTokenSource LinkShutdown(ServerCallContext context) =>
        CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
}
