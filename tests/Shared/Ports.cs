using System.Net;
using System.Net.Sockets;

namespace ShareRpc.TestSupport;

/// <summary>Loopback ports for servers the tests start.</summary>
public static class Ports
{
    /// <summary>
    /// A free loopback port (bound, then released): for a server that must restart on the same
    /// port. Another socket may take it in between; servers that can, bind port 0 instead.
    /// </summary>
    public static int Free()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
