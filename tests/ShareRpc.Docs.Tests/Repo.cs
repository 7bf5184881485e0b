namespace ShareRpc.Docs.Tests;

/// <summary>Where things are: the repository root, and the built programs next to this test's configuration.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    /// <summary>Release or Debug: the configuration this test assembly was built in.</summary>
    public static string Configuration => new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;

    private static string TargetFramework => new DirectoryInfo(AppContext.BaseDirectory).Name;

    /// <summary>The dotnet host running these tests (so child processes use the same runtime).</summary>
    public static string Dotnet =>
        Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : "dotnet";

    public static string CliDll => Built(Path.Combine("src", "ShareRpc.Cli"), "sharerpc.dll");

    public static string QuickstartDll => Built(Path.Combine("examples", "Quickstart"), "Quickstart.dll");

    public static string GuidesDll => Built(Path.Combine("examples", "Guides"), "Guides.dll");

    public static string PathOf(string relative) => Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar));

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));

    private static string Built(string project, string dll)
    {
        var path = Path.Combine(Root, project, "bin", Configuration, TargetFramework, dll);
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {project} first.", path);
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ShareRpc.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("ShareRpc.sln not found above " + AppContext.BaseDirectory);
    }
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
