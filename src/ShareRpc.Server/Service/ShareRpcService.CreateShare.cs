using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

internal sealed partial class ShareRpcService
{
    /// <summary>CreateShare: optional creator token as <c>authorization: Bearer</c>; idempotent on share_key + owner_secret.</summary>
    public override Task<CreateShareResponse> CreateShare(CreateShareRequest request, ServerCallContext context) =>
        engine.CreateShareAsync(request, context.RequestHeaders.GetValue("authorization"), SturdyRefEndpoint.For(Options, context), context.CancellationToken);
}
