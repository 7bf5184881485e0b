using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Protocol;

/// <summary>The sharerpc.v1.ShareRpc method descriptors, shared by the server and the client.</summary>
public static class ShareRpcMethods
{
    public const string ServiceName = "sharerpc.v1.ShareRpc";

    /// <summary>Call-level failure reason trailer (DESIGN.md "AppendOps semantics").</summary>
    public const string ReasonTrailer = "sharerpc-reason";

    public static readonly Method<CreateShareRequest, CreateShareResponse> CreateShare = Unary("CreateShare", CreateShareRequest.Parser, CreateShareResponse.Parser);

    public static readonly Method<RedeemShareRequest, RedeemShareResponse> RedeemShare = Unary("RedeemShare", RedeemShareRequest.Parser, RedeemShareResponse.Parser);

    public static readonly Method<AppendOpsRequest, AppendOpsResponse> AppendOps = new(
        MethodType.DuplexStreaming, ServiceName, "AppendOps", Marshallers.Protobuf(AppendOpsRequest.Parser), Marshallers.Protobuf(AppendOpsResponse.Parser));

    /// <summary>
    /// AppendOps sending pre-serialized requests: the client outbox stores each sealed batch's
    /// bytes and resends exactly those bytes.
    /// </summary>
    public static readonly Method<byte[], AppendOpsResponse> AppendOpsRaw = new(
        MethodType.DuplexStreaming, ServiceName, "AppendOps", Marshallers.Bytes, Marshallers.Protobuf(AppendOpsResponse.Parser));

    public static readonly Method<SubscribeRequest, SubscribeResponse> Subscribe = new(
        MethodType.ServerStreaming, ServiceName, "Subscribe", Marshallers.Protobuf(SubscribeRequest.Parser), Marshallers.Protobuf(SubscribeResponse.Parser));

    public static readonly Method<GetSnapshotRequest, GetSnapshotResponse> GetSnapshot = Unary("GetSnapshot", GetSnapshotRequest.Parser, GetSnapshotResponse.Parser);

    public static readonly Method<DelegateCapabilityRequest, DelegateCapabilityResponse> DelegateCapability = Unary("DelegateCapability", DelegateCapabilityRequest.Parser, DelegateCapabilityResponse.Parser);

    public static readonly Method<RevokeCapabilityRequest, RevokeCapabilityResponse> RevokeCapability = Unary("RevokeCapability", RevokeCapabilityRequest.Parser, RevokeCapabilityResponse.Parser);

    private static Method<TReq, TResp> Unary<TReq, TResp>(string name, Google.Protobuf.MessageParser<TReq> req, Google.Protobuf.MessageParser<TResp> resp)
        where TReq : Google.Protobuf.IMessage<TReq>
        where TResp : Google.Protobuf.IMessage<TResp> =>
        new(MethodType.Unary, ServiceName, name, Marshallers.Protobuf(req), Marshallers.Protobuf(resp));
}
