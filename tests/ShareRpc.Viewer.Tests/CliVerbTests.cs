using System.Text.Json;
using ShareRpc.Client;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Viewer.Tests;

/// <summary>
/// <c>sharerpc redeem | snapshot | delegate | revoke</c>, the built CLI against a real server: what
/// each prints, in text and with <c>--json</c>, and each failure as one line on stderr with exit 1
/// (the call failed) or 2 (the arguments are wrong).
/// </summary>
public sealed class CliVerbTests(ServeFixture fixture) : IClassFixture<ServeFixture>, IAsyncLifetime
{
    private readonly TempDir _dir = new("sharerpc-cli-verbs-");
    private ShareRpcClient _owner = null!;
    private string _ownerRef = "";

    public async Task InitializeAsync()
    {
        _owner = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = _dir.File("owner.db") });
        _ownerRef = await _owner.EnsureShareAsync(fixture.Server.Address, "cli-" + Guid.NewGuid().ToString("N"));
        var writer = _owner.OpenWriter(_ownerRef);
        foreach (var key in new[] { "a", "b", "c", "d" }) await writer.PutAsync("notes", key, System.Text.Encoding.UTF8.GetBytes("note " + key), "text/plain");
        await writer.PutAsync("bin", "x", new byte[] { 0, 1, 2, 255 }, "application/octet-stream");
        await writer.FlushAsync();
    }

    public async Task DisposeAsync()
    {
        await _owner.DisposeAsync();
        _dir.Dispose();
    }

    internal static Task<ProcessResult> CliAsync(params string[] args) => TestProcess.RunAsync(RepoPaths.CliDll, args, TimeSpan.FromSeconds(60));

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Exit <paramref name="exitCode"/>, nothing on stdout, exactly one line on stderr; returns it.</summary>
    private static string AssertOneLineError(ProcessResult r, int exitCode)
    {
        Assert.True(r.ExitCode == exitCode, r.Describe());
        Assert.True(r.StandardOutput.Length == 0, r.Describe());
        return Assert.Single(Lines(r.StandardError));
    }

    [Fact]
    public async Task Redeem_prints_share_capability_rights_epoch_and_cursor()
    {
        var r = await CliAsync("redeem", "--ref", _ownerRef);
        Assert.True(r.ExitCode == 0, r.Describe());
        var fields = Lines(r.StandardOutput).ToDictionary(l => l[..l.LastIndexOf(' ')], l => l[(l.LastIndexOf(' ') + 1)..]);
        var parsed = SturdyRef.Parse(_ownerRef);
        Assert.Equal(parsed.ShareId, fields["share"]);
        Assert.Equal(parsed.CapabilityId, fields["capability"]);
        Assert.Equal("read,append,delegate,revoke", fields["rights"]);
        Assert.Equal("5", fields["cursor"]);

        var json = await CliAsync("redeem", "--ref", _ownerRef, "--json");
        using var doc = JsonDocument.Parse(Assert.Single(Lines(json.StandardOutput)));
        Assert.Equal(parsed.ShareId, doc.RootElement.GetProperty("share_id").GetString());
        Assert.Equal(5UL, doc.RootElement.GetProperty("cursor").GetUInt64());
        Assert.Equal((await _owner.RedeemAsync(_ownerRef)).Epoch, doc.RootElement.GetProperty("epoch").GetUInt64());
        Assert.DoesNotContain("srl1.", json.StandardOutput, StringComparison.Ordinal); // the live ref is a bearer token: not printed
    }

    [Fact]
    public async Task Snapshot_prints_every_document_as_a_json_line_page_by_page()
    {
        var r = await CliAsync("snapshot", "--ref", _ownerRef, "--page-size", "2");
        Assert.True(r.ExitCode == 0, r.Describe());
        var docs = Lines(r.StandardOutput).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["bin/x", "notes/a", "notes/b", "notes/c", "notes/d"], docs.Select(d => d.GetProperty("collection").GetString() + "/" + d.GetProperty("key").GetString()));
        Assert.Equal("note c", docs[3].GetProperty("value").GetString());
        Assert.Equal(Convert.ToBase64String(new byte[] { 0, 1, 2, 255 }), docs[0].GetProperty("value_base64").GetString());
        Assert.StartsWith("5 documents in 3 pages, read at cursor 5", r.StandardError, StringComparison.Ordinal);

        var notes = await CliAsync("snapshot", "--ref", _ownerRef, "--collection", "notes", "--json");
        Assert.Equal(4, Lines(notes.StandardOutput).Length);
        Assert.Empty(notes.StandardError);
    }

    [Fact]
    public async Task Delegate_prints_the_child_ref_and_for_read_its_viewer_link()
    {
        var r = await CliAsync("delegate", "--ref", _ownerRef, "--rights", "read", "--expires", "10m", "--note", "for the reviewer");
        Assert.True(r.ExitCode == 0, r.Describe());
        var lines = Lines(r.StandardOutput);
        Assert.Equal(2, lines.Length);
        var child = SturdyRef.Parse(lines[0]);
        Assert.Equal(SturdyRef.Parse(_ownerRef).ShareId, child.ShareId);
        Assert.Equal($"{fixture.Server.Address}/view#{lines[0]}", lines[1]);
        var redeemed = await _owner.RedeemAsync(lines[0]);
        Assert.Equal([Right.Read], redeemed.Rights);
        Assert.True(redeemed.LiveRefExpiresAt.ToDateTimeOffset() <= DateTimeOffset.UtcNow.AddMinutes(10)); // the live ref never outlives the capability

        var append = await CliAsync("delegate", "--ref", _ownerRef, "--rights", "append", "--json");
        using var doc = JsonDocument.Parse(Assert.Single(Lines(append.StandardOutput)));
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("viewer_link").ValueKind); // no read right: no link
        Assert.Equal("append", doc.RootElement.GetProperty("rights")[0].GetString());
        Assert.Equal(SturdyRef.Parse(doc.RootElement.GetProperty("sturdy_ref").GetString()).CapabilityId, doc.RootElement.GetProperty("capability_id").GetString());
    }

    [Fact]
    public async Task Revoke_ends_a_capability_or_all_delegated_ones_and_moves_the_epoch()
    {
        var one = (await _owner.DelegateAsync(_ownerRef, [Right.Read])).SturdyRef;
        var two = (await _owner.DelegateAsync(_ownerRef, [Right.Read])).SturdyRef;
        var epoch = (await _owner.RedeemAsync(_ownerRef)).Epoch;

        var r = await CliAsync("revoke", "--ref", _ownerRef, "--capability", SturdyRef.Parse(one).CapabilityId);
        Assert.True(r.ExitCode == 0, r.Describe());
        Assert.Equal($"revoked 1 capability ({SturdyRef.Parse(one).CapabilityId}); epoch {epoch + 1}", Assert.Single(Lines(r.StandardOutput)));
        Assert.StartsWith("sharerpc redeem: PERMISSION_DENIED (revoked): ", AssertOneLineError(await CliAsync("redeem", "--ref", one), 1), StringComparison.Ordinal);
        Assert.Equal(0, (await CliAsync("redeem", "--ref", two)).ExitCode);

        var all = await CliAsync("revoke", "--ref", _ownerRef, "--all", "--json");
        using var doc = JsonDocument.Parse(Assert.Single(Lines(all.StandardOutput)));
        Assert.Equal(epoch + 2, doc.RootElement.GetProperty("epoch").GetUInt64());
        Assert.Contains(SturdyRef.Parse(two).CapabilityId, doc.RootElement.GetProperty("revoked_capability_ids").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(1, (await CliAsync("redeem", "--ref", two)).ExitCode);
        Assert.Equal(0, (await CliAsync("redeem", "--ref", _ownerRef)).ExitCode); // the owner keeps its own
    }

    [Theory]
    [InlineData(2, "sharerpc redeem: INVALID_ARGUMENT: --ref is required", "redeem")]
    [InlineData(2, "sharerpc snapshot: INVALID_ARGUMENT: --ref: sturdy ref must start with sharerpc:// or sharerpcs://", "snapshot", "--ref", "http://nope")]
    [InlineData(2, "sharerpc delegate: INVALID_ARGUMENT: --rights: 'write' is not a right (read, append, delegate, revoke)", "delegate", "--ref", "OWNER", "--rights", "read,write")]
    [InlineData(2, "sharerpc delegate: INVALID_ARGUMENT: --expires: 'soon' is not a duration (90s, 30m, 1h, 7d or hh:mm:ss)", "delegate", "--ref", "OWNER", "--rights", "read", "--expires", "soon")]
    [InlineData(2, "sharerpc revoke: INVALID_ARGUMENT: give exactly one of --capability ID and --all", "revoke", "--ref", "OWNER")]
    [InlineData(2, "sharerpc revoke: INVALID_ARGUMENT: give exactly one of --capability ID and --all", "revoke", "--ref", "OWNER", "--all", "--capability", "x")]
    [InlineData(1, "sharerpc redeem: PERMISSION_DENIED (bad-secret): ", "redeem", "--ref", "WRONG_SECRET")]
    [InlineData(1, "sharerpc snapshot: NOT_FOUND (share-not-found): ", "snapshot", "--ref", "NO_SHARE")]
    [InlineData(1, "sharerpc delegate: PERMISSION_DENIED (rights): ", "delegate", "--ref", "READ_ONLY", "--rights", "read")]
    [InlineData(1, "sharerpc revoke: NOT_FOUND (capability-not-found): ", "revoke", "--ref", "OWNER", "--capability", "no_such_capability")]
    [InlineData(1, "sharerpc redeem: UNAVAILABLE: ", "redeem", "--ref", "NO_SERVER")]
    public async Task Failures_are_one_line_with_a_non_zero_exit(int exitCode, string starts, params string[] args)
    {
        var owner = SturdyRef.Parse(_ownerRef);
        var readOnly = (await _owner.DelegateAsync(_ownerRef, [Right.Read])).SturdyRef;
        var substitutes = new Dictionary<string, string>
        {
            ["OWNER"] = _ownerRef,
            ["READ_ONLY"] = readOnly,
            ["WRONG_SECRET"] = new SturdyRef(owner.Host, owner.Port, false, owner.ShareId, owner.CapabilityId, new byte[32]).ToString(),
            ["NO_SHARE"] = new SturdyRef(owner.Host, owner.Port, false, "no_such_share", owner.CapabilityId, owner.Secret).ToString(),
            ["NO_SERVER"] = new SturdyRef("127.0.0.1", Ports.Free(), false, owner.ShareId, owner.CapabilityId, owner.Secret).ToString(),
        };
        var line = AssertOneLineError(await CliAsync([.. args.Select(a => substitutes.GetValueOrDefault(a, a))]), exitCode);
        Assert.StartsWith(starts, line, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(owner.Secret)[..16], line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_json_a_failure_is_one_json_line()
    {
        var line = AssertOneLineError(await CliAsync("revoke", "--ref", _ownerRef, "--capability", "no_such_capability", "--json"), 1);
        using var doc = JsonDocument.Parse(line);
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal("NOT_FOUND", error.GetProperty("code").GetString());
        Assert.Equal("capability-not-found", error.GetProperty("reason").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal(2, (await CliAsync("delegate", "--ref", _ownerRef, "--rights", "", "--json")).ExitCode);
    }
}
