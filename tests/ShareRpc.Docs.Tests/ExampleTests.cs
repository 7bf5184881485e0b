namespace ShareRpc.Docs.Tests;

/// <summary>
/// The compiled examples whose code the README and the guides show (CodeBlockTests keeps the
/// blocks byte-identical to them), run as the docs say: each starts its own server on a free
/// loopback port and needs nothing else.
/// </summary>
public sealed class ExampleTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Readme_quickstart_writes_through_the_outbox_and_reads_it_back()
    {
        // TMPDIR: the example makes its data directory under the temp path; keep it in ours.
        var run = await Programs.RunAsync(Repo.QuickstartDll, [], 60_000, env: new Dictionary<string, string> { ["TMPDIR"] = _tmp.Path });
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(["1: hello", "2: shared", "3: world"], run.Lines);
        Assert.True(Markdown.Source("examples/Quickstart/Program.cs").Split('\n').Length <= 30, "the README's example stays short");
    }

    [Fact]
    public async Task Handoff_guide_example_fences_A_and_B_carries_on()
    {
        var run = await RunGuideAsync("handoff");
        Assert.Contains("A's capability revoked; epoch is now 2", run.Lines);
        Assert.Contains("A is fenced: PermissionDenied (revoked); pending in A's outbox: 1", run.Lines);
        Assert.Contains("B caught up: 2 messages, last part: It races the session cookie.", run.Lines);
        Assert.Contains("viewer: 2 parts in msg_0002, last: Fixed: the test waits for the redirect.", run.Lines);
        Assert.Equal("handoff: ok", run.Lines[^1]);
    }

    [Fact]
    public async Task Replication_guide_example_resumes_from_its_cursor()
    {
        var run = await RunGuideAsync("replicate");
        Assert.Equal(
            [
                "stale update: Rejected VersionConflict, current version 2",
                """replica at cursor 4: o-1={"item":"book","qty":1,"shipped":true}""",
                "replica resumed at cursor 5: 2 orders; equals the server's snapshot",
            ],
            run.Lines);
    }

    [Fact]
    public async Task Chaos_guide_example_finds_no_violation()
    {
        var run = await RunGuideAsync("chaos");
        Assert.Contains(run.Lines, l => l.StartsWith("scenarios ", StringComparison.Ordinal) && l.EndsWith(" 20", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("total ", StringComparison.Ordinal) && l.EndsWith(" 0", StringComparison.Ordinal));
        Assert.Matches(@"^seed 42: 500 ops, \d+ faults injected, log head 500: 0 lost, 0 applied twice$", run.Lines[^1]);
    }

    [Fact]
    public async Task Operate_guide_example_serves_tls_with_a_creator_token_limits_and_metrics()
    {
        var run = await RunGuideAsync("operate");
        Assert.Equal(
            [
                "sturdy ref scheme: sharerpcs",
                "create without the token: Unauthenticated (creator-token)",
                "oversized value: ResourceExhausted (limit)",
                "metrics: sharerpc.server.ops{applied} 3",
                "data dir: server.key sharerpc.db sharerpc.db-shm sharerpc.db-wal",
            ],
            run.Lines);
    }

    private async Task<ProgramResult> RunGuideAsync(string guide)
    {
        var run = await Programs.RunAsync(Repo.GuidesDll, [guide], 120_000, env: new Dictionary<string, string> { ["TMPDIR"] = _tmp.Path });
        Assert.True(run.ExitCode == 0, run.ToString());
        return run;
    }
}
