using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using ShareRpc.Wire.Internal;

namespace ShareRpc.Wire.Server.Internal;

/// <summary>
/// One server call on one HTTP/2 stream: its context, its reader and writer, and how it ends
/// (PROTOCOL-HTTP2.md "Responses": headers, messages, then trailers — or Trailers-Only).
/// </summary>
internal sealed class HttpServerCall : ServerCallContext, IDisposable
{
    private readonly HttpContext _http;
    private readonly GrpcServerOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _callCts;
    private readonly CancellationTokenSource? _deadlineCts;
    private readonly CancellationTokenSource _writeCts;
    private readonly DateTime _deadline;
    private readonly Metadata _trailers = new();
    private Metadata? _requestHeaders;
    private bool _responseStarted;
    private bool _ended;

    public HttpServerCall(HttpContext http, string method, GrpcServerOptions options, ILogger logger, TimeSpan? timeout, string? encoding, CancellationToken serverStopping)
    {
        _http = http;
        _options = options;
        _logger = logger;
        Method = method;
        Encoding = encoding;
        _callCts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, serverStopping);
        if (timeout is { } t)
        {
            _deadline = DateTime.UtcNow + t;
            _deadlineCts = new CancellationTokenSource(t);
            _deadlineCts.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _callCts);
        }
        else
        {
            _deadline = DateTime.MaxValue;
        }

        _writeCts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, _deadlineCts?.Token ?? CancellationToken.None);

        ReadOptions = new MessageReadOptions(options.MaxReceiveMessageBytes, encoding, IsServer: true, method);
    }

    public override string Method { get; }

    public override string Peer
    {
        get
        {
            var c = _http.Connection;
            return c.RemoteIpAddress is null
                ? "unknown"
                : (c.RemoteIpAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "ipv6:[" : "ipv4:") + c.RemoteIpAddress +
                  (c.RemoteIpAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "]" : "") + ":" + c.RemotePort;
        }
    }

    public override DateTime Deadline => _deadline;

    public override Metadata RequestHeaders => _requestHeaders ??= GrpcProtocol.ToMetadata(_http.Request.Headers);

    public override Metadata ResponseTrailers => _trailers;

    public override CancellationToken CancellationToken => _callCts.Token;

    public override Status Status { get; set; } = Status.DefaultSuccess;

    public override HttpContext HttpContext => _http;

    public string? Encoding { get; }

    public MessageReadOptions ReadOptions { get; }

    public bool DeadlineExceeded => _deadlineCts?.IsCancellationRequested == true;

    public bool ClientGone => _http.RequestAborted.IsCancellationRequested;

    public PipeReader RequestBody => _http.Request.BodyReader;

    public CancellationToken DeadlineToken => _deadlineCts?.Token ?? CancellationToken.None;

    /// <summary>
    /// Default token for writes: the client going away or the deadline. Not the call token, which
    /// also fires on server shutdown — a draining handler must still be able to send its last acks.
    /// </summary>
    public CancellationToken WriteToken => _writeCts.Token;

    public override async Task WriteResponseHeadersAsync(Metadata responseHeaders)
    {
        ArgumentNullException.ThrowIfNull(responseHeaders);
        await _writeLock.WaitAsync(CancellationToken).ConfigureAwait(false);
        try
        {
            if (_responseStarted || _ended)
            {
                throw new InvalidOperationException("Response headers can only be sent once, before the first message.");
            }

            foreach (var e in responseHeaders)
            {
                if (GrpcProtocol.IsReservedHeader(e.Key))
                {
                    continue;
                }

                _http.Response.Headers.Append(e.Key, e.IsBinary ? GrpcProtocol.EncodeBinary(e.ValueBytes) : e.Value);
            }

            _responseStarted = true;
            await _http.Response.StartAsync(CancellationToken).ConfigureAwait(false);
            await _http.Response.BodyWriter.FlushAsync(CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Frames one response message; flushes when asked.</summary>
    public async Task WriteMessageAsync<T>(T message, Marshaller<T> marshaller, bool flush, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WriteLocked(message, marshaller);
            if (flush)
            {
                await FlushLockedAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public void WriteMessageBuffered<T>(T message, Marshaller<T> marshaller)
    {
        _writeLock.Wait(WriteToken);
        try
        {
            WriteLocked(message, marshaller);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_ended)
            {
                await FlushLockedAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Ends the call with a status: trailers after a started response, else Trailers-Only.
    /// Later writes fail. Safe to call more than once (the first status wins).
    /// </summary>
    public async Task EndAsync(Status status, Metadata? extraTrailers)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_ended)
            {
                return;
            }

            _ended = true;
            if (ClientGone)
            {
                // The stream is reset: nothing can reach the client.
                return;
            }

            var response = _http.Response;
            if (!_responseStarted && !response.HasStarted)
            {
                // Trailers-Only: one HEADERS frame with END_STREAM holding the status.
                response.Headers[GrpcProtocol.StatusHeader] = ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
                if (!string.IsNullOrEmpty(status.Detail))
                {
                    response.Headers[GrpcProtocol.MessageHeader] = PercentEncoding.Encode(status.Detail);
                }

                foreach (var e in Trailers(extraTrailers))
                {
                    response.Headers.Append(e.Key, e.IsBinary ? GrpcProtocol.EncodeBinary(e.ValueBytes) : e.Value);
                }
            }
            else
            {
                response.AppendTrailer(GrpcProtocol.StatusHeader, ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
                if (!string.IsNullOrEmpty(status.Detail))
                {
                    response.AppendTrailer(GrpcProtocol.MessageHeader, PercentEncoding.Encode(status.Detail));
                }

                foreach (var e in Trailers(extraTrailers))
                {
                    response.AppendTrailer(e.Key, e.IsBinary ? GrpcProtocol.EncodeBinary(e.ValueBytes) : e.Value);
                }
            }

            // Sends what is buffered, the trailers and END_STREAM now, even if the handler runs on
            // (a passed deadline must reach the client without waiting for the handler).
            await response.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException or ConnectionAbortedException)
        {
            _logger.LogDebug(ex, "Could not send the status of {Method}: the stream is gone.", Method);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public void Dispose()
    {
        _deadlineCts?.Dispose();
        _writeCts.Dispose();
        _callCts.Dispose();
    }

    private IEnumerable<Metadata.Entry> Trailers(Metadata? extra)
    {
        foreach (var e in _trailers)
        {
            if (!GrpcProtocol.IsReservedHeader(e.Key))
            {
                yield return e;
            }
        }

        if (extra is null)
        {
            yield break;
        }

        foreach (var e in extra)
        {
            if (!GrpcProtocol.IsReservedHeader(e.Key))
            {
                yield return e;
            }
        }
    }

    private void WriteLocked<T>(T message, Marshaller<T> marshaller)
    {
        if (_ended)
        {
            throw new InvalidOperationException("Can't write the message: the call has ended.");
        }

        GrpcFraming.WriteMessage(_http.Response.BodyWriter, message, marshaller, _options.MaxSendMessageBytes);
        _responseStarted = true;
    }

    private async Task FlushLockedAsync(CancellationToken cancellationToken)
    {
        var result = await _http.Response.BodyWriter.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }
}

/// <summary>Request messages of a server call.</summary>
internal sealed class ServerStreamReader<T> : IBufferedStreamReader<T>
{
    private readonly HttpServerCall _call;
    private readonly Marshaller<T> _marshaller;
    private bool _completed;

    public ServerStreamReader(HttpServerCall call, Marshaller<T> marshaller)
    {
        _call = call;
        _marshaller = marshaller;
    }

    public T Current { get; private set; } = default!;

    public bool TryMoveNextBuffered()
    {
        if (_completed)
        {
            return false;
        }

        try
        {
            if (MessageReader.TryReadBuffered(_call.RequestBody, _marshaller, _call.ReadOptions, out var message))
            {
                Current = message;
                return true;
            }

            return false;
        }
        catch (Exception ex) when (ex is IOException or ConnectionAbortedException or BadHttpRequestException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "The client reset the request stream."), new Metadata(), ex);
        }
    }

    public async Task<bool> MoveNext(CancellationToken cancellationToken = default)
    {
        if (_completed)
        {
            return false;
        }

        using var linked = cancellationToken.CanBeCanceled
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _call.CancellationToken)
            : null;
        var token = linked?.Token ?? _call.CancellationToken;
        try
        {
            var (has, message) = await MessageReader.ReadAsync(_call.RequestBody, _marshaller, _call.ReadOptions, token).ConfigureAwait(false);
            if (!has)
            {
                _completed = true;
                return false;
            }

            Current = message;
            return true;
        }
        catch (Exception ex) when (ex is IOException or ConnectionAbortedException or BadHttpRequestException)
        {
            // A client reset shows here as IOException, not as cancellation.
            throw new RpcException(new Status(StatusCode.Cancelled, "The client reset the request stream."), new Metadata(), ex);
        }
    }
}

/// <summary>Response messages of a server call.</summary>
internal sealed class ServerStreamWriter<T> : IServerStreamWriter<T>
{
    private readonly HttpServerCall _call;
    private readonly Marshaller<T> _marshaller;

    public ServerStreamWriter(HttpServerCall call, Marshaller<T> marshaller)
    {
        _call = call;
        _marshaller = marshaller;
    }

    public Task WriteAsync(T message, CancellationToken cancellationToken = default) =>
        _call.WriteMessageAsync(message, _marshaller, flush: true, cancellationToken.CanBeCanceled ? cancellationToken : _call.WriteToken);

    public void WriteBuffered(T message) => _call.WriteMessageBuffered(message, _marshaller);

    public Task FlushAsync(CancellationToken cancellationToken = default) =>
        _call.FlushAsync(cancellationToken.CanBeCanceled ? cancellationToken : _call.WriteToken);
}
