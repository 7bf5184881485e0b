using Microsoft.AspNetCore.Http;

namespace ShareRpc.Wire;

/// <summary>What a server handler knows about its call.</summary>
public abstract class ServerCallContext
{
    /// <summary>The full method name, "/Service/Method".</summary>
    public abstract string Method { get; }

    /// <summary>The remote address, "ipv4:1.2.3.4:5678" style.</summary>
    public abstract string Peer { get; }

    /// <summary>The client's deadline (UTC), or <see cref="DateTime.MaxValue"/> when it set none.</summary>
    public abstract DateTime Deadline { get; }

    public abstract Metadata RequestHeaders { get; }

    /// <summary>Trailers sent with the status; add to them before the handler returns.</summary>
    public abstract Metadata ResponseTrailers { get; }

    /// <summary>Fires when the client cancels or resets, the deadline passes, or the server stops.</summary>
    public abstract CancellationToken CancellationToken { get; }

    /// <summary>The status sent when the handler returns normally (OK unless set).</summary>
    public abstract Status Status { get; set; }

    /// <summary>Sends response headers now (at most once, before the first message).</summary>
    public abstract Task WriteResponseHeadersAsync(Metadata responseHeaders);

    /// <summary>The underlying ASP.NET Core request.</summary>
    public abstract HttpContext HttpContext { get; }
}

public delegate Task<TResponse> UnaryServerMethod<TRequest, TResponse>(TRequest request, ServerCallContext context);

public delegate Task<TResponse> ClientStreamingServerMethod<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context);

public delegate Task ServerStreamingServerMethod<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context);

public delegate Task DuplexStreamingServerMethod<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context);
