using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>RedeemShare: sturdy ref → live ref (no authorization header needed).</summary>
internal sealed class RedeemShareHandler(ShareEngine engine)
{
    public Task<RedeemShareResponse> Handle(RedeemShareRequest request, ServerCallContext context) =>
        CallSupport.Guard(() => engine.RedeemAsync(request, context.CancellationToken));
}
