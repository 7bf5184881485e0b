using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>CreateShare: optional creator token as <c>authorization: Bearer</c>; idempotent on share_key + owner_secret.</summary>
internal sealed class CreateShareHandler(ShareEngine engine)
{
    public Task<CreateShareResponse> Handle(CreateShareRequest request, ServerCallContext context) =>
        CallSupport.Guard(() => engine.CreateShareAsync(request, context.RequestHeaders.GetValue("authorization"),
            CallSupport.Endpoint(engine.Options, context), context.CancellationToken));
}
