using System.Text.Json;
using PuppeteerSharp;
using ShareRpc.TestSupport;

namespace ShareRpc.Viewer.Tests;

/// <summary>What the page shows of an agent session, read from its DOM (the page's own markup, docs/viewer.md).</summary>
public sealed record RenderedPart(string Id, string Type, string? Status, string? Text);

public sealed record RenderedMessage(string Id, string Role, RenderedPart[] Parts);

public sealed record RenderedDiff(string Cursor, string Path);

public sealed record RenderedConversation(string? Title, RenderedMessage[] Messages, RenderedDiff[] Diffs);

/// <summary>
/// One tab on the viewer. Every wait is on a condition in the page (polled every 50 ms), never a
/// fixed sleep; a wait that times out fails with what the page showed then.
/// </summary>
public sealed class ViewerPage(IPage page) : IAsyncDisposable
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    private const string ReadConversation = """
        () => JSON.stringify({
          title: document.getElementById('session-title')?.textContent ?? null,
          messages: [...document.querySelectorAll('article.message')].map(a => ({
            id: a.dataset.id, role: a.dataset.role,
            parts: [...a.querySelectorAll('.part')].map(p => ({
              id: p.dataset.partId, type: p.dataset.type, status: p.dataset.status ?? null,
              text: p.dataset.type === 'text' || p.dataset.type === 'reasoning' ? p.querySelector('.body')?.textContent ?? null : null })) })),
          diffs: [...document.querySelectorAll('.diff')].map(d => ({ cursor: d.dataset.cursor, path: d.dataset.path })),
        })
        """;

    public IPage Page => page;

    public async Task WaitForAsync(string condition, string what, TimeSpan? timeout = null)
    {
        try
        {
            await page.WaitForFunctionAsync($"() => {condition}", new WaitForFunctionOptions
            {
                Timeout = (int)(timeout ?? TimeSpan.FromSeconds(20)).TotalMilliseconds,
                PollingInterval = 50,
            });
        }
        catch (WaitTaskTimeoutException)
        {
            throw new TimeoutException($"waited for {what}; the page shows: {await DescribeAsync()}");
        }
    }

    /// <summary>Live, every op up to <paramref name="cursor"/> applied.</summary>
    public Task WaitForLiveAtAsync(ulong cursor) =>
        WaitForAsync($"document.body.dataset.phase === 'live' && document.body.dataset.cursor === '{cursor}'", $"live at cursor {cursor}");

    public Task WaitForPhaseAsync(string phase, TimeSpan? timeout = null) =>
        WaitForAsync($"document.body.dataset.phase === '{phase}'", $"phase {phase}", timeout);

    public async Task<string> DatasetAsync(string name) => await page.EvaluateExpressionAsync<string>($"document.body.dataset['{name}'] ?? ''");

    public async Task<string> NoticeAsync() => await page.EvaluateExpressionAsync<string>("document.getElementById('notice')?.hidden ? '' : (document.getElementById('notice')?.textContent ?? '')");

    public async Task<RenderedConversation> ConversationAsync() =>
        JsonSerializer.Deserialize<RenderedConversation>(await page.EvaluateFunctionAsync<string>(ReadConversation), s_json)!;

    /// <summary>The cursors of the op tail's current page, as shown (newest first).</summary>
    public async Task<ulong[]> TailCursorsAsync() =>
        (await page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('.ops li')].map(li => li.dataset.cursor)")).Select(ulong.Parse).ToArray();

    /// <summary>A PNG of the window (or the whole page) at <paramref name="path"/> (its directory made).</summary>
    public async Task ScreenshotAsync(string path, bool fullPage = false)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await page.ScreenshotAsync(path, new ScreenshotOptions { FullPage = fullPage, Type = ScreenshotType.Png });
        Assert.True(new FileInfo(path).Length > 0, path);
    }

    public async Task<string> DescribeAsync()
    {
        try
        {
            return await page.EvaluateExpressionAsync<string>(
                "JSON.stringify(Object.assign({}, document.body.dataset)) + ' notice: ' + (document.getElementById('notice')?.textContent ?? '') + ' status: ' + (document.getElementById('status')?.textContent ?? '')");
        }
        catch (PuppeteerException e)
        {
            return "(could not read the page: " + e.Message + ")";
        }
    }

    public async ValueTask DisposeAsync() => await page.CloseAsync();

    /// <summary>Where the screenshots go: artifacts/viewer/ under the repository root (ignored by git).</summary>
    public static string ScreenshotPath(string name) => Path.Combine(RepoPaths.Root, "artifacts", "viewer", name);
}
