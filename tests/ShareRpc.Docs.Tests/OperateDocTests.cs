using System.Text.RegularExpressions;

namespace ShareRpc.Docs.Tests;

/// <summary>
/// docs/operate.md cannot fall behind the code: every log event of the two [LoggerMessage]
/// catalogues (its id, name and level in one table row), every instrument of the two metrics
/// reporters and every span name is there — and the page lists no event id the code does not have.
/// Read from the sources, so the test needs no reference to the libraries' internals.
/// </summary>
public sealed partial class OperateDocTests
{
    private static readonly string[] s_catalogues = ["src/ShareRpc.Server/Diagnostics/ServerLog.cs", "src/ShareRpc.Client/Diagnostics/ClientLog.cs"];
    private static readonly string[] s_reporters = ["src/ShareRpc.Server/Diagnostics/ServerMetrics.cs", "src/ShareRpc.Client/Diagnostics/ClientMetrics.cs"];
    private static readonly string[] s_tracing = ["src/ShareRpc.Server/Diagnostics/ServerTracing.cs", "src/ShareRpc.Client/Diagnostics/ClientTracing.cs"];

    [GeneratedRegex("""EventId = (?<id>\d+), EventName = "(?<name>\w+)", Level = LogLevel\.(?<level>\w+)""")]
    private static partial Regex EventPattern();

    [GeneratedRegex("""public const string \w+ = "(?<name>sharerpc\.(server|client)\.[a-z_.]+)";""")]
    private static partial Regex InstrumentPattern();

    [GeneratedRegex("""public const string \w+Span = "(?<name>sharerpc\.[a-z_.]+)";""")]
    private static partial Regex SpanPattern();

    [GeneratedRegex(@"^\| (?<id>[12]\d{3}) \|", RegexOptions.Multiline)]
    private static partial Regex DocumentedIdPattern();

    private static string Page => Repo.Read("docs/operate.md");

    private static List<(int Id, string Name, string Level)> Events() =>
        [.. s_catalogues.SelectMany(f => EventPattern().Matches(Repo.Read(f)))
            .Select(m => (int.Parse(m.Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups["name"].Value, m.Groups["level"].Value))];

    [Fact]
    public void Every_log_event_has_a_row_with_its_id_name_and_level()
    {
        var events = Events();
        Assert.True(events.Count >= 25, $"found only {events.Count} events: has the [LoggerMessage] layout changed?");
        var rows = Page.Split('\n');
        var missing = events.Where(e => !rows.Any(r => r.StartsWith($"| {e.Id} | {e.Name} | {e.Level} |", StringComparison.Ordinal))).ToList();
        Assert.True(missing.Count == 0, "docs/operate.md lacks rows \"| id | name | level |\" for: " + string.Join(", ", missing));
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count()); // ids are unique across both sides
    }

    [Fact]
    public void The_page_lists_no_event_id_the_code_does_not_have()
    {
        var ids = Events().Select(e => e.Id).ToHashSet();
        var stale = DocumentedIdPattern().Matches(Page).Select(m => int.Parse(m.Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture)).Where(id => !ids.Contains(id)).ToList();
        Assert.True(stale.Count == 0, "docs/operate.md lists event ids no catalogue has: " + string.Join(", ", stale));
    }

    [Fact]
    public void Every_instrument_and_span_is_documented()
    {
        var instruments = s_reporters.SelectMany(f => InstrumentPattern().Matches(Repo.Read(f))).Select(m => m.Groups["name"].Value).ToList();
        var spans = s_tracing.SelectMany(f => SpanPattern().Matches(Repo.Read(f))).Select(m => m.Groups["name"].Value).ToList();
        Assert.True(instruments.Count >= 16, $"found only {instruments.Count} instruments");
        Assert.Equal(3, spans.Count);
        var missing = instruments.Concat(spans).Where(n => !Page.Contains($"| `{n}` |", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "docs/operate.md has no table row for: " + string.Join(", ", missing));
    }

    [Fact]
    public void The_readme_and_the_design_link_the_page()
    {
        Assert.Contains("(docs/operate.md)", Repo.Read("README.md"), StringComparison.Ordinal);
        Assert.Contains("(operate.md)", Repo.Read("docs/design.md"), StringComparison.Ordinal);
    }
}
