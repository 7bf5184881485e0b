using System.Net;

namespace ShareRpc.Wire;

/// <summary>
/// The two status maps of grpc/grpc doc/PROTOCOL-HTTP2.md: HTTP status → gRPC status when a
/// response carries no grpc-status, and HTTP/2 RST_STREAM error code → gRPC status.
/// </summary>
public static class StatusMapping
{
    /// <summary>doc/http-grpc-status-mapping.md: used only when grpc-status is absent.</summary>
    public static StatusCode FromHttpStatus(int httpStatus) => httpStatus switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        // A 200 without grpc-status is a broken peer: UNKNOWN, as are all other codes.
        _ => StatusCode.Unknown,
    };

    /// <summary>PROTOCOL-HTTP2.md "Errors": RST_STREAM / GOAWAY error codes seen by a client.</summary>
    public static StatusCode FromHttp2ErrorCode(long errorCode) => errorCode switch
    {
        0x0 => StatusCode.Internal,              // NO_ERROR before the trailers arrived
        0x1 => StatusCode.Internal,              // PROTOCOL_ERROR
        0x2 => StatusCode.Internal,              // INTERNAL_ERROR
        0x3 => StatusCode.Internal,              // FLOW_CONTROL_ERROR
        0x4 => StatusCode.Internal,              // SETTINGS_TIMEOUT
        0x6 => StatusCode.Internal,              // FRAME_SIZE_ERROR
        0x7 => StatusCode.Unavailable,           // REFUSED_STREAM: safe to retry
        0x8 => StatusCode.Cancelled,             // CANCEL
        0x9 => StatusCode.Internal,              // COMPRESSION_ERROR
        0xa => StatusCode.Internal,              // CONNECT_ERROR
        0xb => StatusCode.ResourceExhausted,     // ENHANCE_YOUR_CALM
        0xc => StatusCode.PermissionDenied,      // INADEQUATE_SECURITY
        _ => StatusCode.Internal,
    };

    /// <summary>Convenience for <see cref="HttpStatusCode"/>.</summary>
    public static StatusCode FromHttpStatus(HttpStatusCode httpStatus) => FromHttpStatus((int)httpStatus);
}
