using PuppeteerSharp;
using ShareRpc.TestSupport;

namespace ShareRpc.Viewer.Tests;

/// <summary>The tests that drive a browser share one Chromium (one process start), one test at a time.</summary>
[CollectionDefinition(Name)]
public sealed class ChromiumCollection : ICollectionFixture<Chromium>
{
    public const string Name = "chromium";
}

/// <summary>
/// Debian's headless Chromium (<c>/usr/bin/chromium</c>, installed by ./test.sh), driven by
/// PuppeteerSharp with the flags this machine needs (no sandbox as root, no GPU, no background
/// networking: the network is closed) and a fresh profile. Never downloads a browser.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private readonly TempDir _profile = new("sharerpc-chromium-");

    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"No Chromium at {ExecutablePath}: apt-get install chromium (./test.sh installs it).");
        }

        Browser = await Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            UserDataDir = _profile.Path,
            Timeout = 60_000,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
            ],
        });
    }

    /// <summary>A new tab on <paramref name="url"/> (1280×900), its console errors and CSP violations recorded.</summary>
    public async Task<ViewerPage> OpenAsync(string url)
    {
        var page = await Browser.NewPageAsync();
        await page.SetViewportAsync(new ViewPortOptions { Width = 1280, Height = 900 });
        var viewer = new ViewerPage(page);
        await page.GoToAsync(url, WaitUntilNavigation.Load);
        return viewer;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        _profile.Dispose();
    }
}
