namespace ShareRpc.Docs.Tests;

/// <summary>Every code block of the README and the guides is either real code (byte-identical to a compiled or run file), or run by a test, or says why not.</summary>
public sealed class CodeBlockTests
{
    /// <summary>Every <c>run:</c> name and the test that runs it (GuideCommandTests, PythonClientTests).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> RunBlocks = new Dictionary<string, string[]>
    {
        ["README.md"] = ["usage", "share-link"],
        ["docs/guides/agent-handoff.md"] = ["demo-dir"],
        ["docs/guides/replicate-state.md"] = ["tail"],
        ["docs/guides/any-language.md"] = ["python-stubs", "python-client", "buf-curl"],
        ["docs/guides/chaos-your-workload.md"] = ["chaos-shape", "chaos-replay", "chaos-crash-loops", "chaos-canary"],
        ["docs/guides/operate.md"] = ["tls", "drain-backup", "health"],
    };

    private static readonly string[] s_checkedLanguages = ["sh", "bash", "csharp", "python"];

    public static TheoryData<string> Documents() => new(Markdown.Documents());

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_code_block_is_marked(string document)
    {
        var unmarked = Markdown.Blocks(document).Where(b => s_checkedLanguages.Contains(b.Language) && b.MarkerKind is null).ToList();
        Assert.True(unmarked.Count == 0, "code blocks without <!-- code: … -->, <!-- run: … --> or <!-- not run: … -->:\n" + string.Join('\n', unmarked));
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void Code_blocks_are_byte_identical_to_their_files(string document)
    {
        foreach (var block in Markdown.Blocks(document).Where(b => b.MarkerKind == "code"))
        {
            var source = Markdown.Source(block.MarkerValue!);
            Assert.True(source == block.Text, $"{block} differs from {block.MarkerValue}:\n--- document\n{block.Text}\n--- file\n{source}");
        }
    }

    [Fact]
    public void Every_run_block_is_run_by_a_test()
    {
        var marked = Markdown.Documents()
            .SelectMany(d => Markdown.Blocks(d).Where(b => b.MarkerKind == "run").Select(b => d + " " + b.MarkerValue))
            .Order(StringComparer.Ordinal)
            .ToList();
        var covered = RunBlocks.SelectMany(kv => kv.Value.Select(n => kv.Key + " " + n)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(covered, marked);
    }

    [Fact]
    public void The_guides_exist_and_the_readme_links_them()
    {
        var readme = Repo.Read("README.md");
        foreach (var guide in new[] { "agent-handoff", "replicate-state", "any-language", "chaos-your-workload", "operate" })
        {
            Assert.True(File.Exists(Repo.PathOf($"docs/guides/{guide}.md")), guide);
            Assert.Contains($"(docs/guides/{guide}.md)", readme, StringComparison.Ordinal);
        }

        foreach (var doc in new[] { "docs/deploy-postgres.md", "docs/postgres.md", "docs/chaos.md", "docs/client.md", "docs/server.md", "docs/agent-session.md" })
        {
            Assert.Contains($"({doc})", readme, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_readme_keeps_the_two_commands()
    {
        var blocks = Markdown.Blocks("README.md");
        var first = blocks.First(b => b.Language == "sh");
        Assert.Contains("dotnet run --project src/ShareRpc.Cli -- demo", first.Text, StringComparison.Ordinal);
        Assert.Contains("./test.sh", first.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Region_extraction_dedents_and_stops_at_endregion()
    {
        var source = Markdown.Source("examples/Guides/AgentHandoff.cs#handoff");
        Assert.StartsWith("// The handoff.", source, StringComparison.Ordinal);
        Assert.DoesNotContain("endregion", source, StringComparison.Ordinal);
    }

    [Fact]
    public void Shell_rewrite_changes_only_the_port_the_cli_and_server_waits()
    {
        var script = Shell.Rewrite(
            "sharerpc() { dotnet run -c Release --project src/ShareRpc.Cli -- \"$@\"; }\nsharerpc serve --port 7878 --data ./data &   # prints it\nsharerpc tail --ref \"$REF\" --from 0 && echo ok\nsharerpc serve --port 7878 \\\n  --data d &",
            4242);
        Assert.Contains("# (the test's sharerpc is the built CLI) sharerpc() {", script, StringComparison.Ordinal);
        Assert.Contains("sharerpc serve --port 4242 --data ./data  > .serve1.log 2>&1 &\n__wait_listening .serve1.log\n", script, StringComparison.Ordinal);
        Assert.Contains("sharerpc tail --ref \"$REF\" --from 0 && echo ok\n", script, StringComparison.Ordinal);
        Assert.Contains("sharerpc serve --port 4242 \\\n  --data d  > .serve2.log 2>&1 &\n", script, StringComparison.Ordinal);
    }
}
