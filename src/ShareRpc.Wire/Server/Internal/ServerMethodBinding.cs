using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using ShareRpc.Wire.Internal;

namespace ShareRpc.Wire.Server.Internal;

/// <summary>Binds one method description to its handler as an ASP.NET Core request delegate.</summary>
internal interface IServerMethodBinding
{
    string FullName { get; }

    RequestDelegate CreateRequestDelegate(GrpcServerRuntime runtime);
}

/// <summary>What every call handler shares: options, logger, the server-stopping token.</summary>
internal sealed record GrpcServerRuntime(GrpcServerOptions Options, ILogger Logger, CancellationToken ServerStopping);

internal sealed class ServerMethodBinding<TRequest, TResponse> : IServerMethodBinding
{
    private readonly Method<TRequest, TResponse> _method;
    private readonly Delegate _handler;

    public ServerMethodBinding(Method<TRequest, TResponse> method, Delegate handler)
    {
        _method = method;
        _handler = handler;
    }

    public string FullName => _method.FullName;

    public RequestDelegate CreateRequestDelegate(GrpcServerRuntime runtime) => http => HandleAsync(http, runtime);

    private async Task HandleAsync(HttpContext http, GrpcServerRuntime runtime)
    {
        var validated = await RequestValidation.ValidateAsync(http).ConfigureAwait(false);
        if (validated is null)
        {
            return;
        }

        // Long-lived streams: the gRPC size limit applies per message, and a quiet client is not a slow one.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = null;
        }

        if (http.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate)
        {
            rate.MinDataRate = null;
        }

        using var call = new HttpServerCall(http, _method.FullName, runtime.Options, runtime.Logger, validated.Timeout, validated.Encoding, runtime.ServerStopping);
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = GrpcProtocol.ContentType;
        var handlerTask = RunHandlerAsync(call, runtime);
        if (call.Deadline != DateTime.MaxValue)
        {
            // Whichever comes first: the handler's own end, or the deadline (which ends the call
            // with DEADLINE_EXCEEDED even if the handler ignores its token).
            var deadline = Task.Delay(Timeout.Infinite, call.DeadlineToken);
            var first = await Task.WhenAny(handlerTask, deadline).ConfigureAwait(false);
            if (first == deadline && !handlerTask.IsCompleted)
            {
                await call.EndAsync(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded"), null).ConfigureAwait(false);
            }
        }

        var (status, trailers) = await handlerTask.ConfigureAwait(false);
        await call.EndAsync(status, trailers).ConfigureAwait(false);
    }

    private async Task<(Status Status, Metadata? Trailers)> RunHandlerAsync(HttpServerCall call, GrpcServerRuntime runtime)
    {
        try
        {
            await Task.Yield();
            switch (_method.Type)
            {
                case MethodType.Unary:
                {
                    var request = await ReadSingleRequestAsync(call).ConfigureAwait(false);
                    var response = await ((UnaryServerMethod<TRequest, TResponse>)_handler)(request, call).ConfigureAwait(false);
                    WriteUnaryResponse(call, response);
                    break;
                }

                case MethodType.ClientStreaming:
                {
                    var reader = new ServerStreamReader<TRequest>(call, _method.RequestMarshaller);
                    var response = await ((ClientStreamingServerMethod<TRequest, TResponse>)_handler)(reader, call).ConfigureAwait(false);
                    WriteUnaryResponse(call, response);
                    break;
                }

                case MethodType.ServerStreaming:
                {
                    var request = await ReadSingleRequestAsync(call).ConfigureAwait(false);
                    var writer = new ServerStreamWriter<TResponse>(call, _method.ResponseMarshaller);
                    await ((ServerStreamingServerMethod<TRequest, TResponse>)_handler)(request, writer, call).ConfigureAwait(false);
                    break;
                }

                default:
                {
                    var reader = new ServerStreamReader<TRequest>(call, _method.RequestMarshaller);
                    var writer = new ServerStreamWriter<TResponse>(call, _method.ResponseMarshaller);
                    await ((DuplexStreamingServerMethod<TRequest, TResponse>)_handler)(reader, writer, call).ConfigureAwait(false);
                    break;
                }
            }

            return (call.Status, null);
        }
        catch (Exception ex)
        {
            return (StatusFor(call, ex, runtime), (ex as RpcException)?.Trailers);
        }
    }

    private static Status StatusFor(HttpServerCall call, Exception ex, GrpcServerRuntime runtime)
    {
        if (call.DeadlineExceeded)
        {
            return new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded");
        }

        if (call.ClientGone)
        {
            // The client cancelled or reset: nothing can be sent; the status is for the log.
            return Status.DefaultCancelled;
        }

        switch (ex)
        {
            case RpcException rpc:
                return rpc.Status;
            case OperationCanceledException when call.CancellationToken.IsCancellationRequested:
                return new Status(StatusCode.Unavailable, "The server is shutting down.");
            case IOException or ConnectionAbortedException:
                return new Status(StatusCode.Cancelled, "The client reset the stream.");
            default:
                runtime.Logger.LogError(ex, "Handler of {Method} threw.", call.Method);
                // The exception's text stays in the log unless detailed errors are on: it may hold internals.
                return new Status(StatusCode.Unknown, runtime.Options.EnableDetailedErrors
                    ? $"Exception was thrown by handler. {ex.GetType().Name}: {ex.Message}"
                    : "Exception was thrown by handler.");
        }
    }

    private async Task<TRequest> ReadSingleRequestAsync(HttpServerCall call)
    {
        var reader = new ServerStreamReader<TRequest>(call, _method.RequestMarshaller);
        if (!await reader.MoveNext().ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"{_method.FullName} expects one request message; the request held none."));
        }

        var request = reader.Current;
        // The client sends the message and END_STREAM together, so this costs no wait.
        if (await reader.MoveNext().ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"{_method.FullName} expects one request message; the request held more."));
        }

        return request;
    }

    private void WriteUnaryResponse(HttpServerCall call, TResponse response)
    {
        // A handler that set a non-OK status sends no message (as Grpc.AspNetCore does).
        if (call.Status.StatusCode == StatusCode.OK)
        {
            call.WriteMessageBuffered(response, _method.ResponseMarshaller);
        }
    }
}

/// <summary>Serves every path no method claims: UNIMPLEMENTED (PROTOCOL-HTTP2.md).</summary>
internal static class UnimplementedHandler
{
    public static async Task HandleAsync(HttpContext http)
    {
        var validated = await RequestValidation.ValidateAsync(http).ConfigureAwait(false);
        if (validated is null)
        {
            return;
        }

        await RequestValidation.WriteTrailersOnlyAsync(http, new Status(StatusCode.Unimplemented, $"Method {http.Request.Path} is unimplemented.")).ConfigureAwait(false);
    }
}

/// <summary>The checks every gRPC request passes before a handler runs.</summary>
internal static class RequestValidation
{
    internal sealed record Validated(TimeSpan? Timeout, string? Encoding);

    /// <summary>Null when the request was answered with an error here.</summary>
    public static async Task<Validated?> ValidateAsync(HttpContext http)
    {
        var request = http.Request;
        if (!HttpProtocol.IsHttp2(request.Protocol) && !HttpProtocol.IsHttp3(request.Protocol))
        {
            // Only reachable where HTTP/1.1 can be negotiated (TLS with ALPN http/1.1); an h2c-only
            // endpoint refuses HTTP/1.1 at the connection level.
            http.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            SetStatusHeaders(http, new Status(StatusCode.Internal, $"Request protocol '{request.Protocol}' is not supported: gRPC needs HTTP/2."));
            return null;
        }

        if (!HttpMethods.IsPost(request.Method))
        {
            http.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            http.Response.Headers["allow"] = "POST";
            SetStatusHeaders(http, new Status(StatusCode.Internal, $"Request method '{request.Method}' is not supported: gRPC uses POST."));
            return null;
        }

        if (!GrpcProtocol.IsGrpcContentType(request.ContentType))
        {
            http.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            SetStatusHeaders(http, new Status(StatusCode.Internal, $"Content-Type '{request.ContentType}' is not supported: expected application/grpc."));
            return null;
        }

        string? encoding = request.Headers[GrpcProtocol.EncodingHeader];
        if (!GrpcProtocol.IsSupportedEncoding(encoding))
        {
            http.Response.Headers[GrpcProtocol.AcceptEncodingHeader] = GrpcProtocol.SupportedEncodings;
            await WriteTrailersOnlyAsync(http, new Status(StatusCode.Unimplemented, $"Message encoding '{encoding}' is not supported; supported: {GrpcProtocol.SupportedEncodings}.")).ConfigureAwait(false);
            return null;
        }

        TimeSpan? timeout = null;
        string? timeoutHeader = request.Headers[GrpcProtocol.TimeoutHeader];
        if (!string.IsNullOrEmpty(timeoutHeader))
        {
            if (!GrpcTimeout.TryParse(timeoutHeader, out var t))
            {
                await WriteTrailersOnlyAsync(http, new Status(StatusCode.InvalidArgument, $"grpc-timeout '{timeoutHeader}' is malformed: expected 1-8 digits and a unit of H M S m u n.")).ConfigureAwait(false);
                return null;
            }

            timeout = t;
        }

        return new Validated(timeout, string.IsNullOrEmpty(encoding) ? null : encoding);
    }

    public static Task WriteTrailersOnlyAsync(HttpContext http, Status status)
    {
        http.Response.StatusCode = StatusCodes.Status200OK;
        SetStatusHeaders(http, status);
        return http.Response.CompleteAsync();
    }

    private static void SetStatusHeaders(HttpContext http, Status status)
    {
        http.Response.ContentType = GrpcProtocol.ContentType;
        http.Response.Headers[GrpcProtocol.StatusHeader] = ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.Headers[GrpcProtocol.MessageHeader] = PercentEncoding.Encode(status.Detail);
    }
}
