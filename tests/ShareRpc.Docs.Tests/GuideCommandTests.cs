namespace ShareRpc.Docs.Tests;

/// <summary>
/// The shell blocks of the README and the guides marked <c>&lt;!-- run: NAME --&gt;</c>, run with bash
/// against real <c>sharerpc</c> processes (see <see cref="Shell"/> for the only changes made).
/// </summary>
public sealed class GuideCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task<ShellResult> RunAsync(string document, string name)
    {
        var result = await Shell.RunAsync(document, name, _dir.Path);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    private static string[] Lines(ShellResult r) => r.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public async Task Readme_usage()
    {
        var r = await RunAsync("README.md", "usage");
        var lines = Lines(r);
        Assert.Equal("enqueued 1", lines[0]);
        Assert.Contains("applied 1, duplicate 0, rejected 0", lines);
        Assert.Contains(lines, l => l.StartsWith("{\"cursor\":1,", StringComparison.Ordinal) && l.Contains("\"value\":\"hello\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("share ", StringComparison.Ordinal) && l.Contains("pending 0,", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Readme_share_link_prints_a_read_only_ref_and_a_viewer_link_that_serves_the_page()
    {
        var r = await RunAsync("README.md", "share-link");
        var lines = Lines(r);
        var child = Sharerpc.V1.SturdyRef.Parse(lines[^2]);
        var link = new Uri(lines[^1]);
        Assert.Equal($"http://{child.Host}:{child.Port}/view#{lines[^2]}", lines[^1]); // the ref's own server, the ref only in the fragment
        // The page is there (the server stopped with the block: start it again on the same data to ask).
        await using var server = await ShareRpc.TestSupport.ServeProcess.StartAsync(Path.Combine(_dir.Path, "data"), child.Port);
        using var http = new HttpClient();
        var page = await http.GetAsync(new Uri(link.GetLeftPart(UriPartial.Path)));
        Assert.Equal(System.Net.HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("no-referrer", page.Headers.GetValues("Referrer-Policy").Single());
        using var channel = ShareRpc.TestSupport.Calls.Channel(server.Address);
        var redeemed = await ShareRpc.TestSupport.Calls.Stub(channel).RedeemShareAsync(new Sharerpc.V1.RedeemShareRequest { SturdyRef = lines[^2] });
        Assert.Equal([Sharerpc.V1.Right.Read], redeemed.Rights);
    }

    [Fact]
    public async Task Handoff_demo_keeps_its_files()
    {
        var r = await RunAsync("docs/guides/agent-handoff.md", "demo-dir");
        var lines = Lines(r);
        Assert.Matches(@"^verified: \d+ ops, 0 lost, 0 duplicated$", lines.Single(l => l.StartsWith("verified:", StringComparison.Ordinal)));
        var status = lines.Where(l => l.StartsWith("share ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, status.Length);
        Assert.Contains("pending 1,", status[0], StringComparison.Ordinal); // A: the refused op, kept
        Assert.Contains("stopped: PermissionDenied (revoked)", status[0], StringComparison.Ordinal);
        Assert.Contains("pending 0,", status[1], StringComparison.Ordinal); // B: all acked
        Assert.DoesNotContain("stopped", status[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Replicate_tail_from_a_cursor()
    {
        var r = await RunAsync("docs/guides/replicate-state.md", "tail");
        var lines = Lines(r);
        Assert.Contains("applied 3, duplicate 0, rejected 0", lines);
        var tail = lines.Where(l => l.StartsWith("{\"cursor\":", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, tail.Length);
        Assert.StartsWith("{\"cursor\":2,", tail[0], StringComparison.Ordinal);
        Assert.Contains("\"op\":\"put\",\"collection\":\"orders\",\"key\":\"o-2\"", tail[0], StringComparison.Ordinal);
        Assert.StartsWith("{\"cursor\":3,", tail[1], StringComparison.Ordinal);
        Assert.Contains("\"op\":\"delete\",\"collection\":\"orders\",\"key\":\"o-2\"", tail[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Buf_curl_lists_methods_and_creates_a_share_through_reflection()
    {
        var r = await RunAsync("docs/guides/any-language.md", "buf-curl");
        Assert.Contains("sharerpc.v1.ShareRpc/AppendOps", r.Output, StringComparison.Ordinal);
        Assert.Contains("\"sturdyRef\": \"sharerpc://127.0.0.1:", r.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chaos_with_a_workload_shape_and_fault_mix()
    {
        var r = await RunAsync("docs/guides/chaos-your-workload.md", "chaos-shape");
        Assert.Matches(@"scenarios\s+50\n", r.Output);
        Assert.Matches(@"die-after-commit\s+[1-9]\d*\n", r.Output);
        Assert.Matches(@"violations\n(.*\n)*\s+total\s+0\n", r.Output);
    }

    [Fact]
    public async Task Chaos_replays_one_seed()
    {
        var r = await RunAsync("docs/guides/chaos-your-workload.md", "chaos-replay");
        Assert.Matches(@"^seed 705: \d+ ops, \d+ faults, 0 violations", Lines(r)[0]);
    }

    [Fact]
    public async Task Chaos_crash_loops()
    {
        var r = await RunAsync("docs/guides/chaos-your-workload.md", "chaos-crash-loops");
        Assert.Matches(@"crash loops\s+2\n", r.Output);
        Assert.Matches(@"processes killed\s+[1-9]\d*\n", r.Output);
        Assert.Matches(@"violations\n(.*\n)*\s+total\s+0\n", r.Output);
    }

    [Fact]
    public async Task Chaos_canary_is_caught()
    {
        var r = await RunAsync("docs/guides/chaos-your-workload.md", "chaos-canary");
        Assert.Matches(@"canary caught at seed \d+: .*lost", r.Output);
    }

    [Fact]
    public async Task Operate_drain_and_backup()
    {
        var r = await RunAsync("docs/guides/operate.md", "drain-backup");
        var lines = Lines(r);
        Assert.Contains("applied 1, duplicate 0, rejected 0", lines);
        Assert.Contains("drained, exit 0", lines);
        Assert.Equal("600 ./sharerpc-data/server.key", lines[^1]);
        Assert.True(File.Exists(Path.Combine(_dir.Path, "sharerpc-data.bak", "sharerpc.db")));
    }

    [Fact]
    public async Task Operate_tls_with_a_creator_token()
    {
        var r = await RunAsync("docs/guides/operate.md", "tls");
        Assert.StartsWith("sharerpcs://127.0.0.1:", Lines(r)[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Operate_health_check()
    {
        var r = await RunAsync("docs/guides/operate.md", "health");
        Assert.Contains("\"status\": \"SERVING\"", r.Output, StringComparison.Ordinal);
    }
}
