using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Threading.Channels;
using ShareRpc.Wire.Internal;

namespace ShareRpc.Wire.Client.Internal;

internal interface IGrpcCall : IDisposable
{
    Task<Metadata> ResponseHeadersAsync { get; }

    Status GetStatus();

    Metadata GetTrailers();
}

/// <summary>
/// One client call on one HTTP/2 stream (PROTOCOL-HTTP2.md "Requests" and "Responses"): the
/// request headers and body, the response headers, messages and trailers, and the single
/// final status every path ends in (the first to arrive wins: trailers, a reset, the deadline,
/// or the caller's cancellation).
/// </summary>
internal sealed class GrpcCall<TRequest, TResponse> : IGrpcCall, IAsyncStreamReader<TResponse>, IClientStreamWriter<TRequest>
{
    // Frames are gathered up to this size per write, so many small messages share one flush.
    private const int CoalesceBytes = 64 * 1024;

    private readonly GrpcChannel _channel;
    private readonly Method<TRequest, TResponse> _method;
    private readonly CallOptions _options;
    private readonly CancellationTokenSource _callCts = new();
    private readonly object _lock = new();
    private CancellationTokenSource? _deadlineCts;
    private CancellationTokenRegistration _userRegistration;
    private Status? _status;
    private Metadata? _trailers;
    private Task<HttpResponseMessage>? _sendTask;
    private Task<Metadata>? _headersTask;
    private HttpResponseMessage? _response;
    private PipeReader? _responseReader;
    private MessageReadOptions? _readOptions;
    private PushStreamContent? _requestContent;
    private Channel<byte[]>? _writeQueue;
    private Task? _pumpTask;
    private Exception? _pumpError;
    private bool _writesCompleted;

    public GrpcCall(GrpcChannel channel, Method<TRequest, TResponse> method, CallOptions options)
    {
        _channel = channel;
        _method = method;
        _options = options;
    }

    public TResponse Current { get; private set; } = default!;

    public Task<Metadata> ResponseHeadersAsync => _headersTask ?? throw new InvalidOperationException("The call has not started.");

    public void StartSingleRequest(TRequest request)
    {
        byte[] framed;
        try
        {
            framed = GrpcFraming.FrameToArray(request, _method.RequestMarshaller, _channel.Options.MaxSendMessageBytes);
        }
        catch (RpcException ex)
        {
            Finish(ex.Status, null);
            _headersTask = Task.FromException<Metadata>(new RpcException(ex.Status));
            return;
        }

        Start(new ByteArrayContent(framed));
    }

    public void StartStreamingRequest()
    {
        _requestContent = new PushStreamContent();
        _writeQueue = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(_channel.Options.MaxBufferedWriteMessages)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        Start(_requestContent);
    }

    public Status GetStatus()
    {
        lock (_lock)
        {
            return _status ?? throw new InvalidOperationException("The status is known only once the call has finished.");
        }
    }

    public Metadata GetTrailers()
    {
        lock (_lock)
        {
            return _status is null
                ? throw new InvalidOperationException("Trailers are known only once the call has finished.")
                : _trailers ?? new Metadata();
        }
    }

    public Task<bool> MoveNext(CancellationToken cancellationToken = default) => MoveNextCoreAsync(cancellationToken);

    /// <summary>Unary and client-streaming: exactly one message, then an OK status.</summary>
    public async Task<TResponse> ReadSingleResponseAsync()
    {
        var (has, message, status, trailers) = await ReadAsync(CancellationToken.None).ConfigureAwait(false);
        if (!has)
        {
            if (status.StatusCode == StatusCode.OK)
            {
                status = new Status(StatusCode.Internal, $"{_method.FullName} ended with OK but sent no response message.");
            }

            Finish(status, trailers);
            throw Failure();
        }

        var (more, _, endStatus, endTrailers) = await ReadAsync(CancellationToken.None).ConfigureAwait(false);
        if (more)
        {
            endStatus = new Status(StatusCode.Internal, $"{_method.FullName} sent more than one response message.");
        }

        Finish(endStatus, endTrailers);
        if (GetStatus().StatusCode != StatusCode.OK)
        {
            throw Failure();
        }

        return message;
    }

    public async Task WriteAsync(TRequest message, CancellationToken cancellationToken = default)
    {
        ThrowIfCannotWrite();
        byte[] frame;
        try
        {
            frame = GrpcFraming.FrameToArray(message, _method.RequestMarshaller, _channel.Options.MaxSendMessageBytes);
        }
        catch (RpcException ex)
        {
            // Too large to send: the call fails with the same status, as in other gRPC clients.
            Finish(ex.Status, null);
            throw;
        }

        EnsurePump();
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _callCts.Token);
            await _writeQueue!.Writer.WriteAsync(frame, linked.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ChannelClosedException or OperationCanceledException)
        {
            if (cancellationToken.IsCancellationRequested && _status is null)
            {
                Cancel(new Status(StatusCode.Cancelled, "Write canceled by the client."));
            }

            ThrowIfCannotWrite();
            throw;
        }
    }

    public async Task CompleteAsync()
    {
        if (_writeQueue is null)
        {
            throw new InvalidOperationException("This call has no request stream.");
        }

        lock (_lock)
        {
            if (_writesCompleted)
            {
                return;
            }

            _writesCompleted = true;
        }

        EnsurePump();
        _writeQueue.Writer.TryComplete();
        await _pumpTask!.ConfigureAwait(false);
        if (_pumpError is not null && _status is null)
        {
            throw new RpcException(StatusFromException(_pumpError));
        }
    }

    public void Dispose()
    {
        Cancel(new Status(StatusCode.Cancelled, "Call canceled by the client (disposed)."));
        _userRegistration.Dispose();
        _response?.Dispose();
    }

    private void Start(HttpContent content)
    {
        if (_options.CancellationToken.IsCancellationRequested)
        {
            FailBeforeStart(new Status(StatusCode.Cancelled, "Call canceled by the client."));
            return;
        }

        TimeSpan? timeout = null;
        if (_options.Deadline is { } deadline && deadline != DateTime.MaxValue)
        {
            var utc = deadline.Kind == DateTimeKind.Local ? deadline.ToUniversalTime() : deadline;
            var left = utc - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                FailBeforeStart(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded"));
                return;
            }

            timeout = left;
        }

        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_channel.Address, _method.FullName))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        content.Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);
        // grpcio servers refuse a request without it (PROTOCOL-HTTP2.md: "te: trailers" is required).
        request.Headers.TryAddWithoutValidation("te", "trailers");
        request.Headers.TryAddWithoutValidation("user-agent", GrpcProtocol.UserAgent);
        request.Headers.TryAddWithoutValidation(GrpcProtocol.AcceptEncodingHeader, GrpcProtocol.SupportedEncodings);
        if (timeout is { } t)
        {
            request.Headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcTimeout.Format(t));
        }

        if (_options.Headers is { } headers)
        {
            foreach (var e in headers)
            {
                if (!GrpcProtocol.IsReservedHeader(e.Key))
                {
                    request.Headers.TryAddWithoutValidation(e.Key, e.IsBinary ? GrpcProtocol.EncodeBinary(e.ValueBytes) : e.Value);
                }
            }
        }

        if (timeout is { } tt)
        {
            _deadlineCts = new CancellationTokenSource(tt);
            _deadlineCts.Token.UnsafeRegister(static s => ((GrpcCall<TRequest, TResponse>)s!).Cancel(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded")), this);
        }

        if (_options.CancellationToken.CanBeCanceled)
        {
            _userRegistration = _options.CancellationToken.UnsafeRegister(static s => ((GrpcCall<TRequest, TResponse>)s!).Cancel(new Status(StatusCode.Cancelled, "Call canceled by the client.")), this);
        }

        _sendTask = _channel.Invoker.SendAsync(request, _callCts.Token);
        _headersTask = ReadHeadersAsync();
    }

    private void FailBeforeStart(Status status)
    {
        Finish(status, null);
        _headersTask = Task.FromException<Metadata>(new RpcException(status));
    }

    private async Task<Metadata> ReadHeadersAsync()
    {
        HttpResponseMessage response;
        try
        {
            response = await _sendTask!.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Finish(StatusFromException(ex), null);
            throw Failure();
        }

        _response = response;
        Metadata headers;
        Status? trailersOnly;
        try
        {
            headers = GrpcProtocol.ToMetadata(response.Headers);
            trailersOnly = TryReadStatus(response.Headers);
        }
        catch (RpcException ex)
        {
            Finish(new Status(StatusCode.Internal, "Bad gRPC response headers: " + ex.Status.Detail), null);
            throw Failure();
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            // PROTOCOL-HTTP2.md: map the HTTP status only when no grpc-status came with it.
            var status = trailersOnly ?? new Status(StatusMapping.FromHttpStatus(response.StatusCode), $"Bad gRPC response. HTTP status code: {(int)response.StatusCode}");
            Finish(status, headers);
            throw Failure();
        }

        if (trailersOnly is { } s)
        {
            // Trailers-Only: the status is in the only HEADERS frame.
            Finish(s, headers);
            return headers;
        }

        if (!GrpcProtocol.IsGrpcContentType(response.Content.Headers.ContentType?.ToString()))
        {
            Finish(new Status(StatusCode.Unknown, $"Bad gRPC response. Content-Type '{response.Content.Headers.ContentType}' is not application/grpc."), headers);
            throw Failure();
        }

        var encoding = response.Headers.TryGetValues(GrpcProtocol.EncodingHeader, out var enc) ? enc.FirstOrDefault() : null;
        _readOptions = new MessageReadOptions(_channel.Options.MaxReceiveMessageBytes, encoding, IsServer: false, _method.FullName);
        return headers;
    }

    private async Task<bool> MoveNextCoreAsync(CancellationToken cancellationToken)
    {
        var (has, message, status, trailers) = await ReadAsync(cancellationToken).ConfigureAwait(false);
        if (has)
        {
            Current = message;
            return true;
        }

        Finish(status, trailers);
        if (GetStatus().StatusCode == StatusCode.OK)
        {
            return false;
        }

        throw Failure();
    }

    /// <summary>The next message, or the status that ends the stream (not yet recorded).</summary>
    private async Task<(bool HasMessage, TResponse Message, Status Status, Metadata? Trailers)> ReadAsync(CancellationToken cancellationToken)
    {
        if (Done(out var done))
        {
            return done;
        }

        try
        {
            await _headersTask!.ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // Recorded by ReadHeadersAsync.
        }

        if (Done(out done))
        {
            return done;
        }

        CancellationTokenSource? linked = null;
        try
        {
            linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _callCts.Token) : null;
            var token = linked?.Token ?? _callCts.Token;
            _responseReader ??= PipeReader.Create(await _response!.Content.ReadAsStreamAsync(token).ConfigureAwait(false));
            var (has, message) = await MessageReader.ReadAsync(_responseReader, _method.ResponseMarshaller, _readOptions!, token).ConfigureAwait(false);
            if (has)
            {
                return (true, message, default, null);
            }

            // The body ended cleanly: the status is in the trailers (filled only now).
            var trailers = GrpcProtocol.ToMetadata(_response!.TrailingHeaders);
            var status = TryReadStatus(_response.TrailingHeaders)
                ?? new Status(StatusCode.Unknown, "Bad gRPC response: the response ended without a grpc-status.");
            return (false, default!, status, trailers);
        }
        catch (RpcException ex)
        {
            return (false, default!, ex.Status, ex.Trailers);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && _status is null)
        {
            return (false, default!, new Status(StatusCode.Cancelled, "Read canceled by the client."), null);
        }
        catch (Exception ex)
        {
            return (false, default!, StatusFromException(ex), null);
        }
        finally
        {
            linked?.Dispose();
        }
    }

    private bool Done(out (bool, TResponse, Status, Metadata?) result)
    {
        lock (_lock)
        {
            if (_status is { } s)
            {
                result = (false, default!, s, _trailers);
                return true;
            }
        }

        result = default;
        return false;
    }

    private static Status? TryReadStatus(HttpHeaders headers)
    {
        if (!headers.TryGetValues(GrpcProtocol.StatusHeader, out var values))
        {
            return null;
        }

        var raw = values.FirstOrDefault();
        var message = headers.TryGetValues(GrpcProtocol.MessageHeader, out var m) ? PercentEncoding.Decode(m.FirstOrDefault()) : "";
        if (!int.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code))
        {
            return new Status(StatusCode.Unknown, $"Bad gRPC response: grpc-status '{raw}' is not a number. {message}".TrimEnd());
        }

        return new Status((StatusCode)code, message);
    }

    private Status StatusFromException(Exception ex)
    {
        lock (_lock)
        {
            if (_status is { } s)
            {
                return s;
            }
        }

        if (_deadlineCts?.IsCancellationRequested == true)
        {
            return new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded");
        }

        if (_callCts.IsCancellationRequested)
        {
            return new Status(StatusCode.Cancelled, "Call canceled by the client.");
        }

        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is HttpProtocolException hpe)
            {
                // PROTOCOL-HTTP2.md "Errors": RST_STREAM error code → status.
                return new Status(StatusMapping.FromHttp2ErrorCode(hpe.ErrorCode), $"The HTTP/2 stream was reset (error code {hpe.ErrorCode}).");
            }
        }

        if (ex is HttpRequestException or IOException || ex.InnerException is System.Net.Sockets.SocketException or IOException)
        {
            return new Status(StatusCode.Unavailable, "The connection failed: " + ex.Message);
        }

        return new Status(StatusCode.Internal, $"The call failed: {ex.GetType().Name}: {ex.Message}");
    }

    private void Cancel(Status status)
    {
        Finish(status, null);
    }

    /// <summary>Records the final status once; a non-OK status also resets the stream.</summary>
    private bool Finish(Status status, Metadata? trailers)
    {
        lock (_lock)
        {
            if (_status is not null)
            {
                return false;
            }

            _status = status;
            _trailers = trailers ?? new Metadata();
        }

        if (status.StatusCode != StatusCode.OK)
        {
            try
            {
                // RST_STREAM(CANCEL) for whatever is still open.
                _callCts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        _writeQueue?.Writer.TryComplete();
        _requestContent?.Complete();
        return true;
    }

    private RpcException Failure()
    {
        lock (_lock)
        {
            return new RpcException(_status!.Value, _trailers ?? new Metadata());
        }
    }

    private void ThrowIfCannotWrite()
    {
        if (_writeQueue is null)
        {
            throw new InvalidOperationException("This call has no request stream.");
        }

        lock (_lock)
        {
            if (_status is { } s)
            {
                if (s.StatusCode == StatusCode.OK)
                {
                    throw new InvalidOperationException("Can't write: the call has finished.");
                }

                throw new RpcException(s, _trailers ?? new Metadata());
            }

            if (_writesCompleted)
            {
                throw new InvalidOperationException("Can't write: the request stream is complete.");
            }
        }

        if (_pumpError is not null)
        {
            throw new RpcException(StatusFromException(_pumpError));
        }
    }

    private void EnsurePump()
    {
        lock (_lock)
        {
            _pumpTask ??= PumpAsync();
        }
    }

    /// <summary>Moves queued frames to the HTTP/2 request stream, one flush per burst.</summary>
    private async Task PumpAsync()
    {
        await Task.Yield();
        var reader = _writeQueue!.Reader;
        try
        {
            Stream stream;
            try
            {
                stream = await _requestContent!.StreamTask.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The call finished before the body started.
                return;
            }

            var buffer = new byte[CoalesceBytes];
            while (await reader.WaitToReadAsync(_callCts.Token).ConfigureAwait(false))
            {
                var used = 0;
                while (reader.TryRead(out var frame))
                {
                    if (used + frame.Length > buffer.Length)
                    {
                        if (used > 0)
                        {
                            await stream.WriteAsync(buffer.AsMemory(0, used), _callCts.Token).ConfigureAwait(false);
                            used = 0;
                        }

                        if (frame.Length > buffer.Length)
                        {
                            await stream.WriteAsync(frame, _callCts.Token).ConfigureAwait(false);
                            continue;
                        }
                    }

                    frame.CopyTo(buffer, used);
                    used += frame.Length;
                }

                if (used > 0)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, used), _callCts.Token).ConfigureAwait(false);
                }

                await stream.FlushAsync(_callCts.Token).ConfigureAwait(false);
            }

            // Queue completed: CompleteAsync (END_STREAM) or the call finished.
            _requestContent!.Complete();
        }
        catch (Exception ex)
        {
            _pumpError = ex;
            _requestContent!.Fail(ex);
        }
    }
}
