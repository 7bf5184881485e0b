using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>RevokeCapability (REVOKE): one capability and its descendants, or all; returns the new epoch.</summary>
internal sealed class RevokeCapabilityHandler(ShareEngine engine)
{
    public Task<RevokeCapabilityResponse> Handle(RevokeCapabilityRequest request, ServerCallContext context) =>
        CallSupport.Guard(() => engine.RevokeAsync(CallSupport.Authenticate(engine, context), request, context.CancellationToken));
}
