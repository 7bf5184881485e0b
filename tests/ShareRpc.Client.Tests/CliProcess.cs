using ShareRpc.TestSupport;
using ShareRpc.Chaos.Scenarios;

namespace ShareRpc.Client.Tests;

/// <summary>The real <c>sharerpc</c> CLI as a child process (the chaos harness's <see cref="ChildProcess"/>).</summary>
public static class CliProcess
{
    public static string CliDll => RepoPaths.CliDll;

    public static ChildProcess Start(params string[] args) => ChildProcess.Start(CliDll, args);

    /// <summary>A free loopback port (bound then released), for a server that must restart on the same port.</summary>
    public static int FreePort() => ChildProcess.FreePort();
}
