using ShareRpc.TestSupport;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// The non-.NET peers in tests/conformance: /usr/bin/python3 with grpcio and the generated stubs,
/// node with grpc-js, and buf (both from node/node_modules). A missing one fails the test with a
/// message naming it and tests/conformance/setup.sh; nothing is skipped.
/// </summary>
public static class Peers
{
    /// <summary>Debian's python, which has grpcio (not whatever python3 is first on PATH).</summary>
    public const string Python = "/usr/bin/python3";

    public static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(90);

    private static readonly Lazy<Task> s_pythonReady = new(CheckPythonAsync);

    public static string Dir { get; } = Path.Combine(RepoPaths.Root, "tests", "conformance");

    public static string PythonScript(string name) => Path.Combine(Dir, "python", name);

    public static string NodeScript(string name) => Path.Combine(Dir, "node", name);

    /// <summary>Python with grpcio, and the stubs generated (generate.sh is idempotent and cheap when they are current).</summary>
    public static Task RequirePythonAsync() => s_pythonReady.Value;

    /// <summary>Runs python/contract_client.py with <paramref name="args"/> to completion.</summary>
    public static async Task<ProcessResult> RunPythonContractClientAsync(string[] args)
    {
        await RequirePythonAsync();
        return await TestProcess.RunAsync(Python, [PythonScript("contract_client.py"), .. args], RunTimeout, Dir);
    }

    /// <summary>Fails unless node and the npm packages are installed.</summary>
    public static void RequireNode()
    {
        if (FindOnPath("node") is null) throw Missing("node is not on PATH (apt-get install nodejs npm)");
        foreach (var package in new[] { "@grpc/grpc-js", "@grpc/proto-loader" })
        {
            if (!Directory.Exists(Path.Combine(Dir, "node", "node_modules", package)))
                throw Missing($"{package} is not installed in tests/conformance/node (npm ci)");
        }
    }

    /// <summary>The buf binary npm installed.</summary>
    public static string RequireBuf()
    {
        var buf = Path.Combine(Dir, "node", "node_modules", ".bin", "buf");
        return File.Exists(buf) ? buf : throw Missing($"{buf} is missing (npm ci in tests/conformance/node)");
    }

    private static async Task CheckPythonAsync()
    {
        if (!File.Exists(Python)) throw Missing($"{Python} does not exist");
        var probe = await TestProcess.RunAsync(Python, ["-c", "import grpc, google.protobuf"], RunTimeout);
        if (probe.ExitCode != 0) throw Missing($"{Python} cannot import grpc / google.protobuf (python3-grpcio, python3-protobuf)\n{probe.Describe()}");
        var generate = await TestProcess.RunAsync("bash", [PythonScript("generate.sh")], RunTimeout);
        if (generate.ExitCode != 0) throw Missing($"python stub generation failed (protobuf-compiler, protobuf-compiler-grpc)\n{generate.Describe()}");
    }

    private static InvalidOperationException Missing(string what) =>
        new($"Conformance prerequisite missing: {what}. Run tests/conformance/setup.sh (test.sh does) and retry.");

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}

/// <summary>Assertions on a peer's output, which prints one line per step it passed.</summary>
public static class Steps
{
    /// <summary>Each expected text starts an output line, in this order.</summary>
    public static void AssertInOrder(ProcessResult result, string[] steps)
    {
        var lines = result.StandardOutput.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var at = 0;
        foreach (var step in steps)
        {
            while (at < lines.Length && !lines[at].StartsWith(step, StringComparison.Ordinal)) at++;
            Assert.True(at < lines.Length, $"no line starting with \"{step}\" (in order): " + result.Describe());
            at++;
        }
    }
}
