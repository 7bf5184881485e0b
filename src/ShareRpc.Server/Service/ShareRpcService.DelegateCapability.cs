using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

internal sealed partial class ShareRpcService
{
    /// <summary>DelegateCapability (DELEGATE): a child sturdy ref with a subset of the caller's rights.</summary>
    public override Task<DelegateCapabilityResponse> DelegateCapability(DelegateCapabilityRequest request, ServerCallContext context) =>
        engine.DelegateAsync(context.Claims(), request, SturdyRefEndpoint.For(Options, context), context.CancellationToken);
}
