using System.Buffers.Binary;
using System.Net;
using ShareRpc.Chaos.History;

namespace ShareRpc.Chaos.Faults;

/// <summary>
/// Client transport faults: a handler in front of the client's HTTP handler — created with no inner handler,
/// so it goes into <c>ShareRpcChannelOptions.DelegatingHandlers</c> or <c>IHttpClientBuilder.AddHttpMessageHandler</c> — that
/// counts the gRPC messages of AppendOps requests and of AppendOps / Subscribe responses. At the positions
/// the schedule names it drops a request frame (breaking the stream), writes half a frame then resets,
/// delays, sends a frame twice, drops a response frame after the server sent it (the server committed),
/// or stalls a response. Nothing in the client knows: it sees a real broken or slow HTTP/2 stream.
/// </summary>
public sealed class TransportFaultHandler : DelegatingHandler
{
    private readonly string _target;
    private readonly FaultSchedule _schedule;
    private readonly OpHistory _history;
    private int _requests = -1;
    private int _responses = -1;

    public TransportFaultHandler(string target, FaultSchedule schedule, OpHistory history)
    {
        _target = target;
        _schedule = schedule;
        _history = history;
    }

    /// <summary>Faults are injected only while armed (the harness arms it after set-up and disarms it to drain).</summary>
    public bool Armed { get; set; } = true;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri!.AbsolutePath;
        var append = path.EndsWith("/AppendOps", StringComparison.Ordinal);
        var subscribe = path.EndsWith("/Subscribe", StringComparison.Ordinal);
        if (!append && !subscribe)
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        if (append && request.Content is { } content)
        {
            request.Content = new FaultContent(content, this);
        }

        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var replaced = new StreamContent(new FaultReadStream(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), this));
        foreach (var h in response.Content.Headers)
        {
            replaced.Headers.TryAddWithoutValidation(h.Key, h.Value);
        }

        response.Content = replaced;
        return response;
    }

    private ScheduledFault? Next(string point, ref int counter)
    {
        var i = Interlocked.Increment(ref counter);
        return Armed ? _schedule.At(_target, point, i) : null;
    }

    private static int FrameLength(ReadOnlySpan<byte> header) => checked((int)BinaryPrimitives.ReadUInt32BigEndian(header[1..]));

    /// <summary>The request body: the client's writes are regrouped into whole gRPC messages, each of which may get a fault.</summary>
    private sealed class FaultContent : HttpContent
    {
        private readonly HttpContent _inner;
        private readonly TransportFaultHandler _owner;

        public FaultContent(HttpContent inner, TransportFaultHandler owner)
        {
            _inner = inner;
            _owner = owner;
            foreach (var h in inner.Headers)
            {
                Headers.TryAddWithoutValidation(h.Key, h.Value);
            }
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            _inner.CopyToAsync(new FaultWriteStream(stream, _owner));

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    private sealed class FaultWriteStream(Stream inner, TransportFaultHandler owner) : Stream
    {
        private readonly MemoryStream _pending = new();

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _pending.Write(buffer.Span);
            while (true)
            {
                var data = _pending.GetBuffer().AsMemory(0, (int)_pending.Length);
                if (data.Length < 5 || data.Length < 5 + FrameLength(data.Span))
                {
                    return;
                }

                var frame = data[..(5 + FrameLength(data.Span))].ToArray();
                var rest = data[frame.Length..].ToArray();
                _pending.SetLength(0);
                _pending.Write(rest);
                await SendFrameAsync(frame, cancellationToken).ConfigureAwait(false);
            }
        }

        private async Task SendFrameAsync(byte[] frame, CancellationToken ct)
        {
            var fault = owner.Next("request", ref owner._requests);
            switch (fault?.Kind)
            {
                case FaultKind.DropRequest:
                    owner._history.Fault(fault, $"{frame.Length} bytes not sent");
                    throw new IOException("injected fault: request lost");
                case FaultKind.ResetMidBatch:
                    owner._history.Fault(fault, $"{frame.Length / 2} of {frame.Length} bytes sent");
                    await inner.WriteAsync(frame.AsMemory(0, frame.Length / 2), ct).ConfigureAwait(false);
                    await inner.FlushAsync(ct).ConfigureAwait(false);
                    throw new IOException("injected fault: stream reset mid-batch");
                case FaultKind.Delay:
                    owner._history.Fault(fault);
                    await Task.Delay(fault.DelayMs, ct).ConfigureAwait(false);
                    break;
                case FaultKind.DuplicateBatch:
                    owner._history.Fault(fault);
                    await inner.WriteAsync(frame, ct).ConfigureAwait(false);
                    break;
            }

            await inner.WriteAsync(frame, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The response body, read one whole gRPC message at a time, each of which may be dropped or stalled.</summary>
    private sealed class FaultReadStream(Stream inner, TransportFaultHandler owner) : Stream
    {
        private byte[] _frame = [];
        private int _at;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_at == _frame.Length)
            {
                var header = new byte[5];
                var got = 0;
                while (got < 5)
                {
                    var n = await inner.ReadAsync(header.AsMemory(got), cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return got == 0 ? 0 : throw new IOException("response ended inside a message header");
                    }

                    got += n;
                }

                var frame = new byte[5 + FrameLength(header)];
                header.CopyTo(frame, 0);
                await inner.ReadExactlyAsync(frame.AsMemory(5), cancellationToken).ConfigureAwait(false);
                var fault = owner.Next("response", ref owner._responses);
                switch (fault?.Kind)
                {
                    case FaultKind.DropResponse:
                        owner._history.Fault(fault, $"{frame.Length} bytes lost");
                        throw new IOException("injected fault: response lost");
                    case FaultKind.Stall:
                        owner._history.Fault(fault);
                        await Task.Delay(fault.DelayMs, cancellationToken).ConfigureAwait(false);
                        break;
                }

                _frame = frame;
                _at = 0;
            }

            var take = Math.Min(buffer.Length, _frame.Length - _at);
            _frame.AsMemory(_at, take).CopyTo(buffer);
            _at += take;
            return take;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
