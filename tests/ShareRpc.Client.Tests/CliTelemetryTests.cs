using System.Text.Json;
using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>
/// The CLI's logs and telemetry (docs/operate.md, "Wiring"): <c>serve --log-format json</c> writes
/// one JSON object per event with its id; <c>serve --otlp-endpoint</c> exports traces, metrics and
/// logs, and so does <c>append --otlp-endpoint</c>, to an OTLP/HTTP receiver in the test; the client
/// commands log the SDK's catalogue on stderr at <c>--log-level</c>, and nothing without it.
/// </summary>
public sealed class CliTelemetryTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    /// <summary>Exporters flush every 200 ms here instead of every 5 s (traces) and 60 s (metrics).</summary>
    private static readonly Dictionary<string, string> s_fastExport = new()
    {
        ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        ["OTEL_BLRP_SCHEDULE_DELAY"] = "200",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "200",
    };

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task<string> CreateAsync(string server, string key)
    {
        var create = await TestProcess.RunAsync(RepoPaths.CliDll, ["create", "--server", server, "--key", key, "--outbox", _dir.File("creator.db")], s_timeout);
        Assert.True(create.ExitCode == 0, create.Describe());
        return create.StandardOutput.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));
    }

    private async Task<string> OpsFileAsync(int count)
    {
        var file = _dir.File($"ops-{Guid.NewGuid():N}.jsonl");
        await File.WriteAllLinesAsync(file, Enumerable.Range(0, count).Select(i => $$"""{"op":"put","collection":"c","key":"k{{i}}","value":"v{{i}}"}"""));
        return file;
    }

    [Fact]
    public async Task Serve_log_format_json_writes_one_json_object_per_event_with_its_id()
    {
        await using var serve = await ServeProcess.StartAsync(_dir.File("server"), 0, "--log-format", "json", "--log-level", "Information");
        var sturdy = await CreateAsync(serve.Address, "session-json-logs");
        await serve.Process.WaitForLineAsync(l => l.Contains("\"EventId\":1010", StringComparison.Ordinal), s_timeout); // ShareCreated

        var events = serve.Process.Lines.Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(events, e => Assert.Equal(JsonValueKind.Number, e.GetProperty("EventId").ValueKind));
        var started = Assert.Single(events, e => e.GetProperty("EventId").GetInt32() == 1000);
        Assert.Equal("ShareRpc.Server", started.GetProperty("Category").GetString());
        Assert.Equal("Information", started.GetProperty("LogLevel").GetString());
        var created = Assert.Single(events, e => e.GetProperty("EventId").GetInt32() == 1010);
        Assert.Equal(sturdy.Split('/')[3], created.GetProperty("State").GetProperty("ShareId").GetString());
        Assert.DoesNotContain(sturdy[(sturdy.IndexOf('#', StringComparison.Ordinal) + 1)..], string.Join("\n", serve.Process.Lines), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_and_append_export_traces_metrics_and_logs_by_otlp()
    {
        await using var collector = await OtlpReceiver.StartAsync();
        await using var clientCollector = await OtlpReceiver.StartAsync();
        await using var serve = await ServeProcess.StartAsync(_dir.File("server"), s_fastExport, 0,
            "--otlp-endpoint", collector.Endpoint, "--otlp-protocol", "http/protobuf");
        var sturdy = await CreateAsync(serve.Address, "session-otlp");
        var append = await TestProcess.RunAsync(RepoPaths.CliDll,
            ["append", "--ref", sturdy, "--outbox", _dir.File("a.db"), "--file", await OpsFileAsync(20), "--otlp-endpoint", clientCollector.Endpoint, "--otlp-protocol", "http/protobuf"],
            s_timeout);
        Assert.True(append.ExitCode == 0, append.Describe());

        // The server's sharerpc.apply spans, ShareRpc.Server metrics and its Information events (1000, 1010).
        await collector.WaitForAsync(s_timeout, "traces", "metrics", "logs");
        // The append flushed its sharerpc.enqueue spans and ShareRpc.Client metrics before it exited.
        await clientCollector.WaitForAsync(TimeSpan.FromSeconds(1), "traces", "metrics");
    }

    [Fact]
    public async Task Client_commands_log_the_sdk_catalogue_on_stderr_only_when_asked()
    {
        string sturdy;
        await using (var serve = await ServeProcess.StartAsync(_dir.File("server")))
        {
            sturdy = await CreateAsync(serve.Address, "session-client-logs");
        }

        // The server is gone: tail retries (2020, Warning) and gives up (2021, Error), each a line on stderr.
        var logged = await TestProcess.RunAsync(RepoPaths.CliDll, ["tail", "--ref", sturdy, "--give-up-seconds", "2", "--log-level", "Warning"], s_timeout);
        Assert.Equal(1, logged.ExitCode);
        Assert.Contains("ShareRpc.Client[2020]", logged.StandardError, StringComparison.Ordinal);
        Assert.Contains("ShareRpc.Client[2021]", logged.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain(sturdy[(sturdy.IndexOf('#', StringComparison.Ordinal) + 1)..], logged.StandardError, StringComparison.Ordinal);
        Assert.Empty(logged.StandardOutput.Trim());

        // Without --log-level: only the one-line error.
        var quiet = await TestProcess.RunAsync(RepoPaths.CliDll, ["tail", "--ref", sturdy, "--give-up-seconds", "2"], s_timeout);
        Assert.Equal(1, quiet.ExitCode);
        Assert.Single(quiet.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
