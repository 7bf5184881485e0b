using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Sharerpc.V1;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// Strictness Grpc.AspNetCore does not give by default (docs/design.md, "Wire"), as a middleware
/// in front of the gRPC endpoints:
/// <list type="bullet">
/// <item>a <c>content-type</c> that claims gRPC but is not <c>application/grpc[+proto]</c> (or
/// gRPC-Web's) is HTTP 415 with INVALID_ARGUMENT: Grpc.AspNetCore would parse <c>application/grpc+json</c> as protobuf;</item>
/// <item>a plain gRPC call over HTTP/1.1 is HTTP 426 with UNIMPLEMENTED (Grpc.AspNetCore's 426 says INTERNAL);</item>
/// <item>a malformed <c>grpc-timeout</c> is INVALID_ARGUMENT (PROTOCOL-HTTP2: 1–8 digits and a unit);
/// Grpc.AspNetCore ignores it and runs the call without a deadline;</item>
/// <item>a request whose framing is broken (a truncated message, a second message on a unary call)
/// is INVALID_ARGUMENT, not the INTERNAL Grpc.AspNetCore reports: it is the client's error;</item>
/// <item>the request message of a unary or server-streaming ShareRpc call must arrive within
/// RequestBodyTimeout (<see cref="RequestBodyDeadline"/>).</item>
/// </list>
/// </summary>
internal sealed class GrpcRequestChecks(RequestDelegate next, IOptions<ShareRpcServerOptions> options, IServiceProvider services)
{
    private readonly TimeSpan _bodyTimeout = options.Value.RequestBodyTimeout;
    private readonly TimeProvider _clock = services.GetService<TimeProvider>() ?? TimeProvider.System;

    private static readonly string[] s_grpcContentTypes =
    [
        "application/grpc", "application/grpc+proto",
        "application/grpc-web", "application/grpc-web+proto",
        "application/grpc-web-text", "application/grpc-web-text+proto",
    ];

    // Grpc.AspNetCore's texts for request framing errors (Internal/PipeExtensions.cs), reported as INTERNAL.
    private static readonly string[] s_framingErrors = ["Incomplete message.", "Additional data after the message received."];

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var contentType = request.ContentType ?? "";
        if (!HttpMethods.IsPost(request.Method)
            || (!contentType.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) && !IsGrpcPath(request.Path)))
        {
            return next(context); // not a gRPC call (the viewer page, a health probe over GET)
        }

        var mediaType = contentType.Split(';', 2)[0].Trim();
        if (!s_grpcContentTypes.Contains(mediaType, StringComparer.OrdinalIgnoreCase))
        {
            // The client's error, so INVALID_ARGUMENT (3) beside the 415, never INTERNAL.
            return RefuseAsync(context, StatusCodes.Status415UnsupportedMediaType, grpcStatus: 3,
                $"Content-Type '{contentType}' is not supported: send application/grpc or application/grpc+proto");
        }

        if (HttpProtocol.IsHttp11(request.Protocol) && !mediaType.StartsWith("application/grpc-web", StringComparison.OrdinalIgnoreCase))
        {
            // Plain gRPC needs HTTP/2 (PROTOCOL-HTTP2); the cleartext port also speaks HTTP/1.1 for browsers
            // (docs/decisions.md, "HTTP/1.1 and h2c on one cleartext port"). Grpc.AspNetCore would answer 426
            // with INTERNAL; the transport is what the client chose, so UNIMPLEMENTED (12), as a not-supported call.
            context.Response.Headers.Upgrade = request.IsHttps ? "h2" : "h2c";
            context.Response.Headers.Connection = "Upgrade";
            return RefuseAsync(context, StatusCodes.Status426UpgradeRequired, grpcStatus: 12,
                "gRPC is served over HTTP/2 only (h2c with prior knowledge, or TLS with ALPN h2); browsers use gRPC-Web");
        }

        if (request.Headers.TryGetValue("grpc-timeout", out var timeout) && !IsValidTimeout(timeout))
        {
            return RefuseAsync(context, StatusCodes.Status200OK, grpcStatus: 3,
                $"grpc-timeout '{timeout}' is malformed: 1 to 8 digits and a unit (H, M, S, m, u, n)");
        }

        // AppendOps streams batches at the peer's pace: its idle timeout is the handler's (RequestIdleTimeout).
        if (request.Path.StartsWithSegments("/" + Reasons.ServiceName) && !request.Path.Value!.EndsWith("/AppendOps", StringComparison.Ordinal))
            RequestBodyDeadline.Apply(context, _bodyTimeout, _clock);
        context.Response.OnStarting(static state => RewriteFramingError(((HttpContext)state).Response.Headers), context);
        return CallAsync(context);
    }

    private async Task CallAsync(HttpContext context)
    {
        await next(context).ConfigureAwait(false);
        // A streaming call's status is in the trailers, still unsent here.
        if (context.Response.HasStarted && context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { IsReadOnly: false } trailers)
            await RewriteFramingError(trailers).ConfigureAwait(false);
    }

    private static Task RewriteFramingError(IHeaderDictionary statusHeaders)
    {
        if (statusHeaders.TryGetValue("grpc-status", out var status) && status == "13"
            && statusHeaders.TryGetValue("grpc-message", out var message) && s_framingErrors.Contains(Uri.UnescapeDataString(message.ToString())))
        {
            statusHeaders["grpc-status"] = "3";
            statusHeaders["grpc-message"] = Uri.EscapeDataString("the request is not well framed: " + message);
        }
        return Task.CompletedTask;
    }

    /// <summary>The paths of the gRPC services MapShareRpc maps: a POST there is a gRPC call whatever its content-type says.</summary>
    private static bool IsGrpcPath(PathString path) =>
        path.StartsWithSegments("/" + Reasons.ServiceName)
        || path.StartsWithSegments("/grpc.health.v1.Health")
        || (path.Value is { } p && p.StartsWith("/grpc.reflection.", StringComparison.Ordinal));

    /// <summary>PROTOCOL-HTTP2: Timeout → TimeoutValue TimeoutUnit; TimeoutValue → {positive integer as ASCII string of at most 8 digits}.</summary>
    internal static bool IsValidTimeout(StringValues values)
    {
        if (values.Count != 1 || values[0] is not { Length: >= 2 and <= 9 } value) return false;
        if ("HMSmun".IndexOf(value[^1], StringComparison.Ordinal) < 0) return false;
        return long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out _);
    }

    /// <summary>A Trailers-Only response: the gRPC status in the headers, no body.</summary>
    private static Task RefuseAsync(HttpContext context, int httpStatus, int grpcStatus, string message)
    {
        var response = context.Response;
        response.StatusCode = httpStatus;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = grpcStatus.ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = Uri.EscapeDataString(message);
        return Task.CompletedTask;
    }
}
