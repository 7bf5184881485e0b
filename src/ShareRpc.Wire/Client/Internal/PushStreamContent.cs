using System.Net;

namespace ShareRpc.Wire.Client.Internal;

/// <summary>
/// A request body that stays open while the caller writes messages: SocketsHttpHandler hands
/// us the HTTP/2 request stream in SerializeToStreamAsync, and the body ends (END_STREAM) when
/// <see cref="Complete"/> is called.
/// </summary>
internal sealed class PushStreamContent : HttpContent
{
    private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<Stream> StreamTask => _stream.Task;

    public void Complete()
    {
        _stream.TrySetCanceled();
        _done.TrySetResult();
    }

    public void Fail(Exception error)
    {
        _stream.TrySetException(error);
        _done.TrySetException(error);
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        _stream.TrySetResult(stream);
        await _done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = -1;
        return false;
    }
}
