using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// One cleartext TCP port for gRPC clients (h2c with prior knowledge) and browsers (HTTP/1.1: the
/// viewer page and gRPC-Web). Kestrel 10 cannot do both on one cleartext endpoint: with
/// <c>Http1AndHttp2</c> and no TLS it serves HTTP/1.1 only and answers an h2c preface with
/// HTTP_1_1_REQUIRED (measured; dotnet/aspnetcore#56984 is still open). So the socket is bound once
/// here, each accepted connection is sorted by its first bytes — the 24-byte HTTP/2 client preface
/// (RFC 9113 §3.4) or anything else — and handed, with those bytes unread, to one of two Kestrel
/// endpoints: <see cref="Http2"/> (HTTP/2 only) or <see cref="Http1"/> (HTTP/1.1 only). Nothing is
/// copied after the sort: Kestrel reads the socket's own pipe (docs/decisions.md, "HTTP/1.1 and h2c
/// on one cleartext port").
/// </summary>
internal sealed class SharedCleartextPort
{
    /// <summary>How long a new connection may take to send enough bytes to be sorted, then it is closed.</summary>
    public static readonly TimeSpan SortTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Connections accepted but not yet sorted (connections); more are closed at once.</summary>
    public const int MaxUnsortedConnections = 1024;

    private static readonly byte[] s_http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<HttpProtocols, SortedListener> _listeners = [];
    private IConnectionListener? _socket;
    private int _unsorted;
    private int _bound; // sorted listeners bound and not yet disposed (under _gate)

    public SharedCleartextPort(IPEndPoint endPoint)
    {
        Requested = endPoint;
        Http2 = new SortedEndPoint(this, HttpProtocols.Http2);
        Http1 = new SortedEndPoint(this, HttpProtocols.Http1);
    }

    /// <summary>The Kestrel endpoint for connections that open with the HTTP/2 preface.</summary>
    public EndPoint Http2 { get; }

    /// <summary>The Kestrel endpoint for every other connection.</summary>
    public EndPoint Http1 { get; }

    /// <summary>The address asked for (port 0: any) until the socket is bound, then the bound one.</summary>
    public IPEndPoint Requested { get; private set; }

    /// <summary>True when the app's services can bind <see cref="SortedEndPoint"/>s (<c>AddShareRpcServer</c> registers the factory).</summary>
    public static bool IsAvailable(KestrelServerOptions kestrel) =>
        kestrel.ApplicationServices?.GetService(typeof(IEnumerable<IConnectionListenerFactory>)) is IEnumerable<IConnectionListenerFactory> factories
        && factories.OfType<SharedCleartextPortListenerFactory>().Any();

    internal async ValueTask<IConnectionListener> BindAsync(HttpProtocols protocol, SocketTransportFactory sockets, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_socket is null)
            {
                _socket = await sockets.BindAsync(Requested, cancellationToken).ConfigureAwait(false);
                Requested = (IPEndPoint)_socket.EndPoint; // port 0 resolved; a rebind reuses it
                _ = AcceptAsync(_socket);
            }

            var listener = new SortedListener(this, protocol);
            lock (_listeners) _listeners[protocol] = listener;
            _bound++;
            return listener;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Called by a sorted listener when Kestrel unbinds it: the socket stops accepting with the last
    /// one. Open connections live on (Kestrel drains them before it disposes the listeners).
    /// </summary>
    internal async ValueTask UnbindAsync(SortedListener listener)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            bool last;
            lock (_listeners)
            {
                if (_listeners.TryGetValue(listener.Protocol, out var current) && current == listener) _listeners.Remove(listener.Protocol);
                last = _listeners.Count == 0;
            }

            if (last && _socket is { } socket) await socket.UnbindAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Called by a sorted listener when Kestrel disposes it; the socket listener (and the transport's
    /// buffers that open connections use) goes with the last one, after Kestrel's drain.
    /// </summary>
    internal async ValueTask DisposeAsync(SortedListener listener)
    {
        await UnbindAsync(listener).ConfigureAwait(false);
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (--_bound > 0 || _socket is not { } socket) return;
            _socket = null;
            await socket.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task AcceptAsync(IConnectionListener socket)
    {
        try
        {
            while (await socket.AcceptAsync().ConfigureAwait(false) is { } connection)
            {
                if (Interlocked.Increment(ref _unsorted) > MaxUnsortedConnections)
                {
                    Interlocked.Decrement(ref _unsorted);
                    await CloseAsync(connection).ConfigureAwait(false);
                    continue;
                }

                _ = SortAsync(connection);
            }
        }
        catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException)
        {
            // unbound while accepting: the port is closing
        }
    }

    private async Task SortAsync(ConnectionContext connection)
    {
        try
        {
            using var timeout = new CancellationTokenSource(SortTimeout);
            var http2 = await OpensWithHttp2PrefaceAsync(connection.Transport.Input, timeout.Token).ConfigureAwait(false);
            SortedListener? target;
            lock (_listeners)
            {
                target = _listeners.GetValueOrDefault(http2 ? HttpProtocols.Http2 : HttpProtocols.Http1);
            }

            if (target is null || !target.TryEnqueue(connection)) await CloseAsync(connection).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException or InvalidOperationException)
        {
            await CloseAsync(connection).ConfigureAwait(false); // silent, slow or gone before it said anything
        }
        finally
        {
            Interlocked.Decrement(ref _unsorted);
        }
    }

    /// <summary>
    /// Reads until the first bytes either are the whole HTTP/2 preface or stop matching it ("GET ",
    /// "POST" differ by the second byte), then leaves every byte unread for Kestrel: the last
    /// <c>AdvanceTo</c> consumes and examines nothing, so Kestrel's first read returns at once.
    /// </summary>
    internal static async Task<bool> OpensWithHttp2PrefaceAsync(PipeReader input, CancellationToken cancellationToken)
    {
        var head = new byte[s_http2Preface.Length];
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            var n = (int)Math.Min(buffer.Length, head.Length);
            buffer.Slice(0, n).CopyTo(head);
            var matches = head.AsSpan(0, n).SequenceEqual(s_http2Preface.AsSpan(0, n));
            if (!matches || n == head.Length || read.IsCompleted)
            {
                input.AdvanceTo(buffer.Start);
                return matches && n == head.Length;
            }

            input.AdvanceTo(buffer.Start, buffer.End); // wait for more bytes
        }
    }

    private static async ValueTask CloseAsync(ConnectionContext connection)
    {
        connection.Abort(new ConnectionAbortedException("ShareRpc: connection closed before it was handed to Kestrel"));
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>A Kestrel endpoint on the shared port; prints as the bound address (Kestrel's URLs show it).</summary>
    internal sealed class SortedEndPoint(SharedCleartextPort port, HttpProtocols protocol) : EndPoint
    {
        public SharedCleartextPort Port { get; } = port;

        public HttpProtocols Protocol { get; } = protocol;

        public override string ToString() => Port.Requested.ToString();
    }

    /// <summary>What Kestrel accepts from for one protocol: the connections the sort handed it.</summary>
    internal sealed class SortedListener(SharedCleartextPort port, HttpProtocols protocol) : IConnectionListener
    {
        private readonly System.Threading.Channels.Channel<ConnectionContext> _queue =
            System.Threading.Channels.Channel.CreateBounded<ConnectionContext>(MaxUnsortedConnections);

        private int _unbound;
        private int _disposedFlag;

        public HttpProtocols Protocol { get; } = protocol;

        public EndPoint EndPoint { get; } = new SortedEndPoint(port, protocol);

        public bool TryEnqueue(ConnectionContext connection) => _queue.Writer.TryWrite(connection);

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                return await _queue.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is System.Threading.Channels.ChannelClosedException or OperationCanceledException)
            {
                return null; // unbound: Kestrel's accept loop ends
            }
        }

        public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _unbound, 1) != 0) return;
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var left)) await CloseAsync(left).ConfigureAwait(false);
            await port.UnbindAsync(this).ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposedFlag, 1) != 0) return;
            await UnbindAsync().ConfigureAwait(false);
            await port.DisposeAsync(this).ConfigureAwait(false);
        }
    }
}

/// <summary>Binds <see cref="SharedCleartextPort"/>'s endpoints for Kestrel (registered by <c>AddShareRpcServer</c>); Kestrel binds every other endpoint as usual.</summary>
internal sealed class SharedCleartextPortListenerFactory(IOptions<SocketTransportOptions> options, ILoggerFactory loggers)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly SocketTransportFactory _sockets = new(options, loggers);

    public bool CanBind(EndPoint endpoint) => endpoint is SharedCleartextPort.SortedEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        endpoint is SharedCleartextPort.SortedEndPoint sorted
            ? sorted.Port.BindAsync(sorted.Protocol, _sockets, cancellationToken)
            : throw new NotSupportedException($"{endpoint} is not an endpoint of a shared cleartext port");
}
