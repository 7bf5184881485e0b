using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

internal sealed partial class ShareRpcService
{
    /// <summary>RedeemShare: sturdy ref → live ref (no authorization header needed).</summary>
    public override Task<RedeemShareResponse> RedeemShare(RedeemShareRequest request, ServerCallContext context) =>
        engine.RedeemAsync(request, context.CancellationToken);
}
