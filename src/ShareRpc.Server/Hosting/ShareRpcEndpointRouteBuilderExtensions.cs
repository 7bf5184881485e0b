using Microsoft.AspNetCore.Routing;
using ShareRpc.Server.Service;

// In the namespace of MapGrpcService, so that a host needs no using for it (grpc-dotnet's convention).
namespace Microsoft.AspNetCore.Builder;

/// <summary><c>app.MapShareRpc()</c>.</summary>
public static class ShareRpcEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps sharerpc.v1.ShareRpc, grpc.health.v1.Health (SERVING; NOT_SERVING while the server
    /// drains) and grpc.reflection (so <c>buf curl</c> and grpcurl need no protos). Needs
    /// <c>services.AddShareRpcServer()</c>. Returns the ShareRpc service's endpoints.
    /// </summary>
    public static IEndpointConventionBuilder MapShareRpc(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var service = endpoints.MapGrpcService<ShareRpcService>();
        endpoints.MapGrpcHealthChecksService();
        endpoints.MapGrpcReflectionService();
        return service;
    }
}
