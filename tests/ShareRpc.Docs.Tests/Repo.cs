using ShareRpc.TestSupport;

namespace ShareRpc.Docs.Tests;

/// <summary>Where things are: the repository root, and the built programs next to this test's configuration.</summary>
public static class Repo
{
    public static string Root => RepoPaths.Root;

    /// <summary>Release or Debug: the configuration this test assembly was built in.</summary>
    public static string Configuration => RepoPaths.Configuration;

    /// <summary>The dotnet host running these tests (so child processes use the same runtime).</summary>
    public static string Dotnet =>
        Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : "dotnet";

    public static string CliDll => RepoPaths.CliDll;

    public static string QuickstartDll => RepoPaths.Built(Path.Combine("examples", "Quickstart"), "Quickstart.dll");

    public static string GuidesDll => RepoPaths.Built(Path.Combine("examples", "Guides"), "Guides.dll");

    public static string PathOf(string relative) => Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar));

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));
}

/// <summary>A temporary directory, removed on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sharerpc-docs-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
