using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>DelegateCapability (DELEGATE): a child sturdy ref with a subset of the caller's rights.</summary>
internal sealed class DelegateCapabilityHandler(ShareEngine engine)
{
    public Task<DelegateCapabilityResponse> Handle(DelegateCapabilityRequest request, ServerCallContext context) =>
        CallSupport.Guard(() => engine.DelegateAsync(CallSupport.Authenticate(engine, context), request,
            CallSupport.Endpoint(engine.Options, context), context.CancellationToken));
}
