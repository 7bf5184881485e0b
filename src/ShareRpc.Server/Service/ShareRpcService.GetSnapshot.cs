using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Server.Service;

internal sealed partial class ShareRpcService
{
    /// <summary>GetSnapshot (READ): one page of documents.</summary>
    public override Task<GetSnapshotResponse> GetSnapshot(GetSnapshotRequest request, ServerCallContext context) =>
        engine.GetSnapshotAsync(context.Claims(), request, context.CancellationToken);
}
