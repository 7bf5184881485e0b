using ShareRpc.Chaos.Scenarios;

namespace ShareRpc.Client.Tests;

/// <summary>The real <c>sharerpc</c> CLI as a child process (the chaos harness's <see cref="ChildProcess"/>).</summary>
public static class CliProcess
{
    /// <summary>src/ShareRpc.Cli/bin/&lt;Configuration&gt;/net10.0/sharerpc.dll, next to this test's own configuration.</summary>
    public static string CliDll
    {
        get
        {
            var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
            var configuration = baseDir.Parent!.Name;
            var root = baseDir;
            while (root is not null && !File.Exists(Path.Combine(root.FullName, "ShareRpc.sln")))
            {
                root = root.Parent;
            }

            var dll = Path.Combine(root!.FullName, "src", "ShareRpc.Cli", "bin", configuration, baseDir.Name, "sharerpc.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("Build src/ShareRpc.Cli first.", dll);
        }
    }

    public static ChildProcess Start(params string[] args) => ChildProcess.Start(CliDll, args);

    /// <summary>A free loopback port (bound then released), for a server that must restart on the same port.</summary>
    public static int FreePort() => ChildProcess.FreePort();
}
