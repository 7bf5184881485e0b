using System.Globalization;
using System.Text.Json;
using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>
/// The meters as an operator reads them from outside: <c>dotnet-counters collect</c> (installed by
/// ./test.sh, tests/diagnostics/setup.sh) attached to a real <c>sharerpc serve</c> while
/// <c>sharerpc append</c> processes run against it, and to a <c>sharerpc append</c> holding its
/// acks, reads nonzero values of the ShareRpc.Server and ShareRpc.Client instruments.
/// </summary>
public sealed class CountersTests : IDisposable
{
    private static readonly string s_tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-counters");
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Dotnet_counters_reads_server_and_client_instruments_while_append_runs()
    {
        Assert.True(File.Exists(s_tool), $"{s_tool} is missing: run tests/diagnostics/setup.sh (./test.sh does)");
        await using var serve = await ServeProcess.StartAsync(_dir.File("server"));
        var create = await TestProcess.RunAsync(RepoPaths.CliDll, ["create", "--server", serve.Address, "--key", "session-counters", "--outbox", _dir.File("creator.db")], TimeSpan.FromSeconds(60));
        Assert.True(create.ExitCode == 0, create.Describe());
        var sturdy = create.StandardOutput.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("sharerpc://", StringComparison.Ordinal));

        // An append that holds its acks: its 200 ops stay pending in its outbox while it runs.
        var ops = _dir.File("held.jsonl");
        await File.WriteAllLinesAsync(ops, Enumerable.Range(0, 200).Select(i => $$"""{"op":"put","collection":"held","key":"k{{i}}","value":"v"}"""));
        await using var held = TestProcess.Start(RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", _dir.File("held.db"), "--file", ops, "--fault-hold-before-ack");
        await held.WaitForLineAsync(l => l.StartsWith("fault: holding before ack", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        var serverFile = _dir.File("server.json");
        var clientFile = _dir.File("client.json");
        await using var serverCounters = Collect(serve.Process.Id, "ShareRpc.Server", serverFile, TimeSpan.FromSeconds(15));
        await using var clientCounters = Collect(held.Id, "ShareRpc.Client", clientFile, TimeSpan.FromSeconds(8));

        // Appends run, one process after another, for as long as the server is watched.
        for (var run = 0; !serverCounters.HasExited; run++)
        {
            var batch = _dir.File($"run{run}.jsonl");
            await File.WriteAllLinesAsync(batch, Enumerable.Range(0, 50).Select(i => $$"""{"op":"put","collection":"run{{run}}","key":"k{{i}}","value":"v"}"""));
            var append = await TestProcess.RunAsync(RepoPaths.CliDll, ["append", "--ref", sturdy, "--outbox", _dir.File("appender.db"), "--file", batch], TimeSpan.FromSeconds(60));
            Assert.True(append.ExitCode == 0, append.Describe());
        }

        Assert.Equal(0, await serverCounters.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, await clientCounters.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var server = Read(serverFile);
        var client = Read(clientFile);
        Assert.True(server.GetValueOrDefault("sharerpc.server.ops") > 0, Describe(server));
        Assert.Contains("sharerpc.server.commit.queued", server.Keys);
        Assert.Equal(200, client.GetValueOrDefault("sharerpc.client.outbox.pending"));
        Assert.True(client.GetValueOrDefault("sharerpc.client.outbox.oldest_pending.age") > 0, Describe(client));
    }

    /// <summary><c>dotnet-counters collect</c> of one meter for <paramref name="duration"/>, into a JSON file written when it ends.</summary>
    private static TestProcess Collect(int pid, string meter, string file, TimeSpan duration) =>
        TestProcess.Start(s_tool, ["collect", "--process-id", pid.ToString(CultureInfo.InvariantCulture), "--counters", meter, "--format", "json", "-o", file,
            "--refresh-interval", "1", "--duration", duration.ToString(@"dd\:hh\:mm\:ss", CultureInfo.InvariantCulture)], workingDirectory: null);

    /// <summary>Each instrument's largest value over the session ("sharerpc.server.ops ({op})" → "sharerpc.server.ops").</summary>
    private static Dictionary<string, double> Read(string file)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(file));
        var max = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var e in json.RootElement.GetProperty("Events").EnumerateArray())
        {
            var name = e.GetProperty("name").GetString()!;
            var space = name.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0) name = name[..space];
            var value = e.GetProperty("value").GetDouble();
            max[name] = Math.Max(max.GetValueOrDefault(name, double.MinValue), value);
        }

        return max;
    }

    private static string Describe(Dictionary<string, double> values) => "read: " + string.Join(", ", values.Select(kv => $"{kv.Key}={kv.Value}"));
}
