using Microsoft.Data.Sqlite;

namespace ShareRpc.Chaos.Tests;

internal static class Cli
{
    /// <summary>src/ShareRpc.Cli/bin/&lt;Configuration&gt;/net10.0/sharerpc.dll, next to this test's own configuration.</summary>
    public static string Dll
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
}

/// <summary>A temp dir, removed at the end.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sharerpc-chaos-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Path, true);
        }
        catch (IOException)
        {
        }
    }
}
