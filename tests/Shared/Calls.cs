using Grpc.Core;
using Grpc.Net.Client;
using ShareRpcGrpc = Sharerpc.V1.ShareRpc;

namespace ShareRpc.TestSupport;

/// <summary>Plain Grpc.Net.Client calls to a ShareRpc server, with the generated stub (no SDK in between).</summary>
public static class Calls
{
    /// <summary>The generated client over <paramref name="channel"/>.</summary>
    public static ShareRpcGrpc.ShareRpcClient Stub(GrpcChannel channel) => new(channel);

    /// <summary>A channel to <paramref name="address"/> (h2c for http://).</summary>
    public static GrpcChannel Channel(string address) => GrpcChannel.ForAddress(address);

    /// <summary>Call options carrying a live ref (<c>authorization: Bearer …</c>).</summary>
    public static CallOptions Bearer(string liveRef, CancellationToken cancellationToken = default) =>
        new(new Metadata { { "authorization", "Bearer " + liveRef } }, cancellationToken: cancellationToken);
}
