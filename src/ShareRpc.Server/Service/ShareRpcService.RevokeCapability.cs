using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

internal sealed partial class ShareRpcService
{
    /// <summary>RevokeCapability (REVOKE): one capability and its descendants, or all; returns the new epoch.</summary>
    public override Task<RevokeCapabilityResponse> RevokeCapability(RevokeCapabilityRequest request, ServerCallContext context) =>
        engine.RevokeAsync(context.Claims(), request, context.CancellationToken);
}
