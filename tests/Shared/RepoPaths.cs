namespace ShareRpc.TestSupport;

/// <summary>
/// Where things are, for tests that run built programs as real processes: the repository root and
/// a project's build output next to the test's own configuration and target framework.
/// </summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>Release or Debug: the configuration this test assembly was built in.</summary>
    public static string Configuration => new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;

    private static string TargetFramework => new DirectoryInfo(AppContext.BaseDirectory).Name;

    /// <summary>src/ShareRpc.Cli/bin/&lt;Configuration&gt;/&lt;tfm&gt;/sharerpc.dll.</summary>
    public static string CliDll => Built(Path.Combine("src", "ShareRpc.Cli"), "sharerpc.dll");

    /// <summary><paramref name="dll"/> in <paramref name="project"/>'s build output; throws naming the project to build when missing.</summary>
    public static string Built(string project, string dll)
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
