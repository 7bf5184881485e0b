using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>GetSnapshot: one page of documents (READ).</summary>
internal sealed class GetSnapshotHandler(ShareEngine engine)
{
    public Task<GetSnapshotResponse> Handle(GetSnapshotRequest request, ServerCallContext context) =>
        CallSupport.Guard(() => engine.GetSnapshotAsync(CallSupport.Authenticate(engine, context), request, context.CancellationToken));
}
