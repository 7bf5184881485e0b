using System.Text.Json;
using ShareRpc.AgentSession;
using ShareRpc.Client;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using Xunit.Abstractions;

namespace ShareRpc.Viewer.Tests;

/// <summary>
/// The viewer in a real headless Chromium against a real <c>sharerpc serve</c> process: the agent
/// session rendered as the server's log says, live ops appearing, a SIGKILL and restart resumed
/// without a gap or a repeat, the revoke ending the view, and bad links told clearly.
/// </summary>
[Collection(ChromiumCollection.Name)]
public sealed class ViewerBrowserTests(Chromium chromium, ITestOutputHelper output) : IDisposable
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private readonly TempDir _dir = new("sharerpc-viewer-");

    public void Dispose() => _dir.Dispose();

    private ShareRpcClient Client(string? outbox = null) => new(new ShareRpcClientOptions
    {
        OutboxPath = outbox is null ? null : _dir.File(outbox),
        InitialBackoff = TimeSpan.FromMilliseconds(50),
        MaxBackoff = TimeSpan.FromMilliseconds(400),
    });

    [Fact]
    public async Task The_view_follows_a_session_through_a_server_restart_until_it_is_revoked()
    {
        var data = _dir.File("data");
        var server = await ServeProcess.StartAsync(data);
        try
        {
            await using var owner = Client("agent.db");
            var ownerRef = await owner.EnsureShareAsync(server.Address, "ses_viewer", "Fix the flaky login test");
            var writerRef = (await owner.DelegateAsync(ownerRef, [Right.Read, Right.Append], note: "agent")).SturdyRef;
            var viewerRef = (await owner.DelegateAsync(ownerRef, [Right.Read], note: "viewer")).SturdyRef;
            var writer = new AgentSessionWriter(owner.OpenWriter(writerRef));
            await writer.UpsertSessionAsync(SessionTurns.Session("ses_viewer", "Fix the flaky login test"));
            var head = await SessionTurns.WriteAsync(writer, "ses_viewer", 1, 4);

            // 1. The link of a read-only capability shows the session as the server's log makes it.
            await using var page = await chromium.OpenAsync(ShareRpcViewer.LinkFor(viewerRef));
            await page.WaitForLiveAtAsync(head);
            Assert.Equal("conversation", await page.DatasetAsync("mode"));
            await AssertShowsTheLogAsync(page, owner, ownerRef, messages: 8);

            // 2. More ops appear as they commit.
            head = await SessionTurns.WriteAsync(writer, "ses_viewer", 5, 6);
            await page.WaitForLiveAtAsync(head);
            await AssertShowsTheLogAsync(page, owner, ownerRef, messages: 12);

            // 3. SIGKILL: the page says it is reconnecting; the restarted server (same port, same data) is resumed from the last cursor.
            await server.Process.KillAsync();
            await page.WaitForPhaseAsync("reconnecting");
            Assert.Contains("Reconnecting", await page.NoticeAsync(), StringComparison.Ordinal);
            var port = server.Port;
            await server.DisposeAsync();
            server = await ServeProcess.StartAsync(data, port);
            head = await SessionTurns.WriteAsync(writer, "ses_viewer", 7, 9);
            await page.WaitForLiveAtAsync(head);
            await AssertShowsTheLogAsync(page, owner, ownerRef, messages: 18);
            Assert.Equal("0", await page.DatasetAsync("gaps"));
            Assert.Equal("0", await page.DatasetAsync("duplicates"));
            Assert.True(int.Parse(await page.DatasetAsync("reconnects")) >= 1);
            var tail = await page.TailCursorsAsync(); // newest first: one page of consecutive cursors ending at the head
            Assert.Equal(Enumerable.Range(0, tail.Length).Select(i => head - (ulong)i), tail);
            Assert.Equal("0", await page.DatasetAsync("cspViolations"));
            var screenshot = ViewerPage.ScreenshotPath("viewer-conversation.png");
            await page.ScreenshotAsync(screenshot);
            output.WriteLine("screenshot: " + screenshot);
            Console.WriteLine("viewer screenshot: " + screenshot);

            // 4. Revoked: the notice, and the stream stops (no stream open, later ops not shown).
            await owner.RevokeAsync(ownerRef, SturdyRef.Parse(viewerRef).CapabilityId);
            await page.WaitForAsync("document.body.dataset.phase === 'revoked' && document.body.dataset.streams === '0'", "the revoked notice, no stream open");
            Assert.Contains("Access revoked", await page.NoticeAsync(), StringComparison.Ordinal);
            var after = await SessionTurns.WriteAsync(writer, "ses_viewer", 10, 10);
            Assert.True(after > head);
            Assert.Equal(head.ToString(System.Globalization.CultureInfo.InvariantCulture), await page.DatasetAsync("cursor"));
            await page.ScreenshotAsync(ViewerPage.ScreenshotPath("viewer-revoked.png"));
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private async Task AssertShowsTheLogAsync(ViewerPage page, ShareRpcClient owner, string ownerRef, int messages)
    {
        var expected = await ServerLog.ExpectedAsync(owner, ownerRef);
        var shown = await page.ConversationAsync();
        Assert.Equal(messages, expected.Messages.Length);
        Assert.Equal(JsonSerializer.Serialize(expected, s_json), JsonSerializer.Serialize(shown, s_json));
    }

    [Fact]
    public async Task Bad_links_say_what_is_wrong()
    {
        await using var server = await ServeProcess.StartAsync(_dir.File("data"));
        await using var owner = Client("owner.db");
        var ownerRef = SturdyRef.Parse(await owner.EnsureShareAsync(server.Address, "bad-links"));
        var wrongSecret = new SturdyRef(ownerRef.Host, ownerRef.Port, false, ownerRef.ShareId, ownerRef.CapabilityId, new byte[32]);
        var noShare = new SturdyRef(ownerRef.Host, ownerRef.Port, false, "no_such_share", ownerRef.CapabilityId, new byte[32]);
        var expired = (await owner.DelegateAsync(ownerRef.ToString(), [Right.Read], DateTimeOffset.UtcNow.AddSeconds(1))).SturdyRef;
        await Wait.UntilAsync(() => RedeemRefusedAsExpired(owner, expired), TimeSpan.FromSeconds(30), "the one-second capability expired on the server");
        var view = server.Address + ShareRpcViewer.Path;
        (string Url, string Says)[] cases =
        [
            (view, "No share to show"),
            (view + "#sharerpc://not-a-ref", "not valid"),
            (ShareRpcViewer.LinkFor(wrongSecret.ToString()), "not valid here"),
            (ShareRpcViewer.LinkFor(noShare.ToString()), "Share not found"),
            (ShareRpcViewer.LinkFor(expired), "This link has expired"),
        ];
        foreach (var (url, says) in cases)
        {
            await using var page = await chromium.OpenAsync(url);
            await page.WaitForPhaseAsync("failed");
            var notice = await page.NoticeAsync();
            Assert.True(notice.Contains(says, StringComparison.Ordinal), $"{url}: expected a notice saying '{says}', got '{notice}'");
            Assert.DoesNotContain(wrongSecret.ToString()[(wrongSecret.ToString().IndexOf('#') + 1)..], notice, StringComparison.Ordinal);
        }
    }

    private static async Task<bool> RedeemRefusedAsExpired(ShareRpcClient client, string sturdyRef)
    {
        try
        {
            await client.RedeemAsync(sturdyRef);
            return false;
        }
        catch (ShareRpcCallException ex) when (ex.Reason == Reasons.CapabilityExpired)
        {
            return true;
        }
    }

    [Fact]
    public async Task A_plain_share_shows_its_collections_documents_and_op_tail_a_page_at_a_time()
    {
        await using var server = await ServeProcess.StartAsync(_dir.File("data"));
        await using var owner = Client("owner.db");
        var ownerRef = await owner.EnsureShareAsync(server.Address, "plain");
        var writer = owner.OpenWriter(ownerRef);
        for (var i = 0; i < 120; i++) await writer.PutAsync("items", $"item-{i:D3}", System.Text.Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"), "application/json");
        await writer.PutAsync("notes", "a", "hello"u8.ToArray(), "text/plain");
        await writer.FlushAsync();
        var head = (await owner.RedeemAsync(ownerRef)).Cursor;
        var viewerRef = (await owner.DelegateAsync(ownerRef, [Right.Read])).SturdyRef;

        await using var page = await chromium.OpenAsync(ShareRpcViewer.LinkFor(viewerRef));
        await page.WaitForLiveAtAsync(head);
        Assert.Equal("documents", await page.DatasetAsync("mode"));
        // Only one page of documents is in the DOM; the pager counts all of them.
        await page.WaitForAsync("document.querySelectorAll('table.docs tbody tr').length === 50 && document.querySelector('[data-pager=documents]').dataset.total === '120'", "the first page of 120 items");
        Assert.Equal("item-000", await page.Page.EvaluateExpressionAsync<string>("document.querySelector('table.docs tbody tr').dataset.key"));
        await page.Page.ClickAsync("[data-pager=documents] [data-go=next]");
        await page.WaitForAsync("document.querySelector('table.docs tbody tr')?.dataset.key === 'item-050'", "the second page");
        // The tail shows the ops before the snapshot too (read once), newest first, one page of them.
        await page.WaitForAsync($"document.querySelector('.ops li')?.dataset.cursor === '{head}' && document.querySelectorAll('.ops li').length === 50", "the op tail's first page");

        await writer.PutAsync("notes", "b", "live"u8.ToArray(), "text/plain");
        await writer.FlushAsync();
        await page.WaitForLiveAtAsync(head + 1);
        await page.Page.ClickAsync("[data-collection=notes] button");
        await page.WaitForAsync("[...document.querySelectorAll('table.docs tbody tr')].map(r => r.dataset.key).join(',') === 'a,b'", "notes a and b");
        Assert.Equal("0", await page.DatasetAsync("cspViolations"));
    }

    [Fact]
    public async Task A_link_from_sharerpc_delegate_shows_the_share_until_sharerpc_revoke()
    {
        await using var server = await ServeProcess.StartAsync(_dir.File("data"));
        var outbox = _dir.File("cli.db");
        var ownerRef = (await CliVerbTests.CliAsync("create", "--server", server.Address, "--key", "round-trip", "--outbox", outbox)).StandardOutput.Trim();
        var appended = await TestProcess.RunAsync(RepoPaths.CliDll, ["append", "--ref", ownerRef, "--outbox", outbox], TimeSpan.FromSeconds(60),
            standardInput: "{\"op\":\"put\",\"collection\":\"notes\",\"key\":\"a\",\"value\":\"hello\"}\n{\"op\":\"put\",\"collection\":\"notes\",\"key\":\"b\",\"value\":\"world\"}\n");
        Assert.True(appended.ExitCode == 0, appended.Describe());

        var delegated = await CliVerbTests.CliAsync("delegate", "--ref", ownerRef, "--rights", "read", "--expires", "1h", "--note", "round trip");
        Assert.True(delegated.ExitCode == 0, delegated.Describe());
        var (childRef, link) = (delegated.StandardOutput.Split('\n')[0].Trim(), delegated.StandardOutput.Split('\n')[1].Trim());
        Assert.StartsWith(server.Address + "/view#sharerpc://", link, StringComparison.Ordinal);

        await using var page = await chromium.OpenAsync(link);
        await page.WaitForLiveAtAsync(2);
        await page.WaitForAsync("[...document.querySelectorAll('table.docs tbody tr')].map(r => r.dataset.key).join(',') === 'a,b'", "notes a and b");

        var revoked = await CliVerbTests.CliAsync("revoke", "--ref", ownerRef, "--capability", SturdyRef.Parse(childRef).CapabilityId);
        Assert.True(revoked.ExitCode == 0, revoked.Describe());
        await page.WaitForAsync("document.body.dataset.phase === 'revoked' && document.body.dataset.streams === '0'", "the revoked notice, no stream open");
        Assert.Contains("Access revoked", await page.NoticeAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_demo_prints_a_viewer_link_that_works_while_it_keeps_serving()
    {
        await using var demo = TestProcess.Start(RepoPaths.CliDll, "demo", "--turns", "6", "--keep-serving", "10m");
        var verified = await demo.WaitForLineAsync(l => l.StartsWith("verified: ", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
        var ops = ulong.Parse(verified.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var printed = (await demo.WaitForLineAsync(l => l.StartsWith("      the same view in a browser: ", StringComparison.Ordinal))).Split(": ", 2)[1].Split(' ')[0];
        var link = (await demo.WaitForLineAsync(l => l.StartsWith("  http://", StringComparison.Ordinal))).Trim();
        Assert.Equal(printed, link);

        await using (var page = await chromium.OpenAsync(link))
        {
            await page.WaitForLiveAtAsync(ops);
            Assert.Equal("Fix the flaky login test", (await page.ConversationAsync()).Title);
        }

        demo.Terminate(); // SIGTERM ends the wait; the demo still stops its server and exits 0
        Assert.Equal(0, await demo.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("the server is stopping", demo.Lines);
    }
}
