using System.Net;
using System.Net.Sockets;

namespace ShareRpc.Cluster.Tests;

/// <summary>
/// The load balancer in front of the nodes, as small as it can be: each new TCP connection goes to
/// the first backend that accepts one, bytes are copied both ways. A killed node refuses
/// connections, so the next connection lands on the other node — a failover as clients see it.
/// </summary>
public sealed class TcpBalancer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<IReadOnlyList<int>> _backends;
    private readonly Task _accepting;
    private int _connections;

    public TcpBalancer(Func<IReadOnlyList<int>> backendPorts)
    {
        _backends = backendPorts;
        _listener.Start();
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections accepted so far (a reconnect after failover makes it grow).</summary>
    public int Connections => Volatile.Read(ref _connections);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient inbound;
            try
            {
                inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref _connections);
            _ = Task.Run(() => ForwardAsync(inbound));
        }
    }

    private async Task ForwardAsync(TcpClient inbound)
    {
        using (inbound)
        {
            TcpClient? outbound = null;
            foreach (var port in _backends())
            {
                var candidate = new TcpClient();
                try
                {
                    await candidate.ConnectAsync(IPAddress.Loopback, port, _stop.Token);
                    outbound = candidate;
                    break;
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    candidate.Dispose();
                }
            }

            if (outbound is null)
            {
                return; // no node up: the client sees a reset and retries
            }

            using (outbound)
            {
                inbound.NoDelay = outbound.NoDelay = true;
                var a = inbound.GetStream();
                var b = outbound.GetStream();
                var up = a.CopyToAsync(b, _stop.Token);
                var down = b.CopyToAsync(a, _stop.Token);
                try
                {
                    await Task.WhenAny(up, down);
                }
                catch (Exception)
                {
                }

                // One side ended (a killed node, a closed client): end both, as a real balancer would.
                inbound.Client.Close(0);
                outbound.Client.Close(0);
                try
                {
                    await Task.WhenAll(up, down);
                }
                catch (Exception)
                {
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception)
        {
        }

        _stop.Dispose();
    }
}
