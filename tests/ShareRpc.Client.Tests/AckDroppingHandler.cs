using System.Buffers.Binary;
using System.Net;

namespace ShareRpc.Client.Tests;

/// <summary>
/// A fault-injecting HTTP handler: records every byte the client sends on AppendOps calls and,
/// for the first N such calls, lets the first ack reach this handler and then breaks the
/// response stream — "response lost after commit".
/// </summary>
internal sealed class AckDroppingHandler : DelegatingHandler
{
    private int _dropRemaining;

    public AckDroppingHandler(int dropFirstCalls)
        : base(new SocketsHttpHandler())
    {
        _dropRemaining = dropFirstCalls;
    }

    public List<MemoryStream> AppendCalls { get; } = new();

    /// <summary>Splits a recorded request body into its gRPC message payloads.</summary>
    public static List<byte[]> Frames(byte[] body)
    {
        var frames = new List<byte[]>();
        var at = 0;
        while (at + 5 <= body.Length)
        {
            var len = (int)BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(at + 1));
            if (at + 5 + len > body.Length)
            {
                break;
            }

            frames.Add(body.AsSpan(at + 5, len).ToArray());
            at += 5 + len;
        }

        return frames;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.RequestUri!.AbsolutePath.EndsWith("/AppendOps", StringComparison.Ordinal))
        {
            return await base.SendAsync(request, cancellationToken);
        }

        var record = new MemoryStream();
        lock (AppendCalls)
        {
            AppendCalls.Add(record);
        }

        request.Content = new TeeContent(request.Content!, record);
        var response = await base.SendAsync(request, cancellationToken);
        if (Interlocked.Decrement(ref _dropRemaining) >= 0)
        {
            var inner = await response.Content.ReadAsStreamAsync(cancellationToken);
            var broken = new StreamContent(new AckSwallowingStream(inner));
            foreach (var h in response.Content.Headers)
            {
                broken.Headers.TryAddWithoutValidation(h.Key, h.Value);
            }

            response.Content = broken;
        }

        return response;
    }

    private sealed class TeeContent : HttpContent
    {
        private readonly HttpContent _inner;
        private readonly MemoryStream _record;

        public TeeContent(HttpContent inner, MemoryStream record)
        {
            _inner = inner;
            _record = record;
            foreach (var h in inner.Headers)
            {
                Headers.TryAddWithoutValidation(h.Key, h.Value);
            }
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            _inner.CopyToAsync(new TeeStream(stream, _record));

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    private sealed class TeeStream(Stream inner, MemoryStream record) : Stream
    {
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

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (record)
            {
                record.Write(buffer, offset, count);
            }

            inner.Write(buffer, offset, count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            lock (record)
            {
                record.Write(buffer.Span);
            }

            await inner.WriteAsync(buffer, cancellationToken);
        }
    }

    /// <summary>Reads one whole ack from the server, then fails as a dropped connection would.</summary>
    private sealed class AckSwallowingStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var header = new byte[5];
            await inner.ReadExactlyAsync(header, cancellationToken);
            var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1))];
            await inner.ReadExactlyAsync(body, cancellationToken);
            throw new IOException("injected fault: the ack was lost on the way back");
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
