using System.Diagnostics;

namespace ShareRpc.TestSupport;

/// <summary>
/// Waiting on a condition, never on a fixed sleep: polls until it holds, and fails naming what did
/// not happen when the patience runs out. For conditions no event signals (a hook's counter, a file,
/// a log sink, a meter). The one poll loop of the tests: helpers that wait call it.
/// </summary>
public static class Wait
{
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(10);

    public static Task UntilAsync(Func<bool> condition, TimeSpan patience, string what) =>
        UntilAsync(() => Task.FromResult(condition()), patience, () => what);

    /// <summary>The same for a condition that has to ask something (a server, a file) to be answered.</summary>
    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan patience, string what) =>
        UntilAsync(condition, patience, () => what);

    /// <summary>
    /// The same, with the failure described when it happens (<paramref name="describe"/> runs once, at
    /// the timeout: what was seen instead, the last answer).
    /// </summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan patience, Func<string> describe) =>
        UntilAsync(() => Task.FromResult(condition()), patience, describe);

    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan patience, Func<string> describe)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition().ConfigureAwait(false))
        {
            if (clock.Elapsed > patience)
            {
                throw new TimeoutException($"Not within {patience.TotalSeconds:0.#} s: {describe()}.");
            }

            await Task.Delay(s_pollInterval).ConfigureAwait(false);
        }
    }
}
