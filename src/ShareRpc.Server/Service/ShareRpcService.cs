using ShareRpc.Protocol;
using ShareRpc.Wire;

namespace ShareRpc.Server.Service;

/// <summary>Binds the seven RPCs of sharerpc.v1.ShareRpc to an engine.</summary>
public static class ShareRpcService
{
    public static ServerServiceDefinition Create(ShareEngine engine) => ServerServiceDefinition.CreateBuilder()
        .AddMethod(ShareRpcMethods.CreateShare, new CreateShareHandler(engine).Handle)
        .AddMethod(ShareRpcMethods.RedeemShare, new RedeemShareHandler(engine).Handle)
        .AddMethod(ShareRpcMethods.AppendOps, new AppendOpsHandler(engine).Handle)
        .AddMethod(ShareRpcMethods.Subscribe, new SubscribeHandler(engine).Handle)
        .AddMethod(ShareRpcMethods.GetSnapshot, new GetSnapshotHandler(engine).Handle)
        .AddMethod(ShareRpcMethods.DelegateCapability, new DelegateCapabilityHandler(engine).Handle)
        .AddMethod(ShareRpcMethods.RevokeCapability, new RevokeCapabilityHandler(engine).Handle)
        .Build();
}
