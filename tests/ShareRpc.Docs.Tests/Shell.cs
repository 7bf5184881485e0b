using System.Globalization;
using System.Text;
using ShareRpc.TestSupport;
using System.Text.RegularExpressions;

namespace ShareRpc.Docs.Tests;

public sealed record ShellResult(int ExitCode, string Output, string Error, string Script)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}\n--- script\n{Script}";
}

/// <summary>
/// Runs a documented shell block with bash, as written, in a scratch directory, with only what a
/// reader's shell supplies besides: <c>sharerpc</c> on PATH is the built CLI (the block's own
/// <c>sharerpc() { dotnet run … }</c> line, if any, is dropped: it would rebuild the same program);
/// port 7878 becomes a free port; a command started with <c>&amp;</c> that is a server is waited for
/// until it prints "listening on", as a reader waits before typing the next line; background jobs
/// are stopped (SIGTERM) when the block ends. The scratch directory links <c>protos</c>, <c>docs</c>
/// and <c>examples</c> from the repository, so paths written from the repository root work.
/// </summary>
public static partial class Shell
{
    private const string Prelude = """
        set -euo pipefail
        __wait_listening() {
          for _ in $(seq 1 600); do grep -q "listening on" "$1" 2>/dev/null && return 0; sleep 0.1; done
          echo "no 'listening on' in $1:" >&2; cat "$1" >&2; return 1
        }
        trap 'for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

        """;

    public static async Task<ShellResult> RunAsync(string document, string name, string workDir, int timeoutMs = 120_000)
    {
        var block = Markdown.RunBlock(document, name);
        foreach (var link in new[] { "protos", "docs", "examples" })
        {
            var at = Path.Combine(workDir, link);
            if (!Path.Exists(at))
            {
                Directory.CreateSymbolicLink(at, Repo.PathOf(link));
            }
        }

        // sharerpc: an executable (not a shell function), so "sharerpc serve &" is the server's own
        // process and "kill %1" reaches it.
        var bin = Path.Combine(workDir, ".bin");
        Directory.CreateDirectory(bin);
        var wrapper = Path.Combine(bin, "sharerpc");
        await File.WriteAllTextAsync(wrapper, "#!/bin/sh\nexec \"$SHARERPC_DOTNET\" \"$SHARERPC_DLL\" \"$@\"\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var script = Prelude + Rewrite(block.Text, Ports.Free());
        var file = Path.Combine(workDir, $"{name}.sh");
        await File.WriteAllTextAsync(file, script);

        var env = new Dictionary<string, string>
        {
            ["SHARERPC_DOTNET"] = Repo.Dotnet,
            ["SHARERPC_DLL"] = Repo.CliDll,
            // The system python3 (with grpcio) first, then buf from tests/conformance/setup.sh.
            ["PATH"] = string.Join(':', bin, "/usr/bin", Repo.PathOf("tests/conformance/node/node_modules/.bin"), Environment.GetEnvironmentVariable("PATH")),
        };
        var run = await Programs.RunAsync("bash", [file], TimeSpan.FromMilliseconds(timeoutMs), workDir, env);
        return new ShellResult(run.ExitCode, run.Output, run.Error, script);
    }

    /// <summary>The block as bash runs it (see the class summary for the only changes).</summary>
    public static string Rewrite(string block, int port)
    {
        var text = block.Replace("7878", port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        var logical = new List<string>();
        var current = new StringBuilder();
        foreach (var line in text.Split('\n'))
        {
            current.Append(line);
            if (line.EndsWith('\\'))
            {
                current.Append('\n');
                continue;
            }

            logical.Add(current.ToString());
            current.Clear();
        }

        if (current.Length > 0)
        {
            logical.Add(current.ToString());
        }

        var output = new StringBuilder();
        var n = 0;
        foreach (var line in logical)
        {
            if (DefinesSharerpc().IsMatch(line))
            {
                output.Append("# (the test's sharerpc is the built CLI) ").Append(line.Replace('\n', ' ')).Append('\n');
                continue;
            }

            var background = Background().Match(line);
            if (background.Success && line.Contains("sharerpc serve", StringComparison.Ordinal))
            {
                n++;
                output.Append(background.Groups[1].Value).Append($" > .serve{n}.log 2>&1 &\n__wait_listening .serve{n}.log\n");
                continue;
            }

            output.Append(line).Append('\n');
        }

        return output.ToString();
    }

    [GeneratedRegex(@"^\s*sharerpc\(\)\s*\{")]
    private static partial Regex DefinesSharerpc();

    // "cmd … &" or "cmd … &   # comment", not "a && b".
    [GeneratedRegex(@"^(.*?[^&])&\s*(#.*)?$", RegexOptions.Singleline)]
    private static partial Regex Background();
}
