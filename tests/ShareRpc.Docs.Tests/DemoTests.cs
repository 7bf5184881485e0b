using System.Text.RegularExpressions;

namespace ShareRpc.Docs.Tests;

/// <summary><c>sharerpc demo</c>, the README's main command, run as a real process.</summary>
public sealed partial class DemoTests
{
    [Fact]
    public async Task Demo_tells_the_story_and_ends_verified()
    {
        var run = await Programs.RunAsync(Repo.CliDll, ["demo"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(run.Elapsed < TimeSpan.FromMinutes(2), run.ToString());

        // The last line: the comparison of every enqueued op with the server's log.
        var verified = VerifiedLine().Match(run.Lines[^1]);
        Assert.True(verified.Success, run.ToString());
        var ops = int.Parse(verified.Groups[1].Value);
        Assert.True(ops > 0, run.ToString());
        Assert.Contains(run.Lines, l => l.StartsWith("enqueued: ", StringComparison.Ordinal) && l.EndsWith($"server log: {ops} ops, cursors 1..{ops}", StringComparison.Ordinal));

        // The steps happened: a real server process killed and restarted, a replay the server
        // deduplicated, the handoff fenced, B caught up, the viewer equal to the server.
        Assert.Contains(run.Lines, l => l.StartsWith("sharerpc serve --port ", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("SIGKILL: the server process is gone", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("restart: sharerpc serve --port ", StringComparison.Ordinal) && l.Contains("listening again", StringComparison.Ordinal));
        var duplicates = DuplicateLine().Match(Assert.Single(run.Lines, l => DuplicateLine().IsMatch(l)));
        Assert.True(int.Parse(duplicates.Groups[1].Value) > 0, run.ToString());
        Assert.Contains(run.Lines, l => l.StartsWith("APPLIED ", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.Contains("epoch 1 -> 2", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l == "A appends one more part: refused PERMISSION_DENIED (revoked). A is fenced");
        Assert.Contains(run.Lines, l => l.StartsWith("nothing dropped silently: the refused op stays in A's outbox (pending 1", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("B subscribes from cursor 0", StringComparison.Ordinal) && l.EndsWith("equals the server's snapshot", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("B streams turns ", StringComparison.Ordinal) && l.Contains("all acked", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("viewer: cursor " + ops + ",", StringComparison.Ordinal) && l.EndsWith("equals the server's snapshot", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Lines, l => l.StartsWith("FAILED", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Demo_exits_non_zero_when_the_verifier_misses_an_op()
    {
        // A hidden test hook leaves one op out of the log the verifier reads: it must notice.
        var run = await Programs.RunAsync(Repo.CliDll, ["demo", "--turns", "6", "--test-hide-logged-op", "5"]);
        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.DoesNotContain(run.Lines, l => l.StartsWith("verified:", StringComparison.Ordinal));
        Assert.Matches(@"^verification failed: \d+ ops, 1 lost, 0 duplicated", run.Lines[^1]);
        Assert.Contains(run.Lines, l => l.StartsWith("FAILED lost: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Demo_exits_non_zero_when_the_verifier_sees_an_op_twice()
    {
        var run = await Programs.RunAsync(Repo.CliDll, ["demo", "--turns", "6", "--test-double-logged-op", "7"]);
        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.DoesNotContain(run.Lines, l => l.StartsWith("verified:", StringComparison.Ordinal));
        Assert.Matches(@"^verification failed: \d+ ops, 0 lost, 1 duplicated", run.Lines[^1]);
        Assert.Contains(run.Lines, l => l.StartsWith("FAILED duplicated: ", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^verified: (\d+) ops, 0 lost, 0 duplicated$")]
    private static partial Regex VerifiedLine();

    [GeneratedRegex(@"^DUPLICATE (\d+): committed before the kill")]
    private static partial Regex DuplicateLine();
}
