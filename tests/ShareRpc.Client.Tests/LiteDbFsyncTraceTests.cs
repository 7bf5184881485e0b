using System.Text.RegularExpressions;
using ShareRpc.Client.LiteDb;
using ShareRpc.TestSupport;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Issue 17: the LiteDB outbox's durability, seen from the kernel. A real <c>sharerpc append --outbox-engine
/// litedb</c> runs under strace (tests/diagnostics/strace.sh installs it); between the write of the op's bytes to
/// the outbox's log and the process saying the op is enqueued, there is an fsync of that log file.
/// </summary>
public sealed partial class LiteDbFsyncTraceTests : IDisposable
{
    private const string Strace = "/usr/bin/strace";
    private readonly TempDir _dir = new("litedb-strace-");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task An_enqueue_returns_only_after_an_fsync_of_the_outbox_log_that_holds_its_op()
    {
        Assert.True(File.Exists(Strace), $"{Strace} is missing: tests/diagnostics/strace.sh installs it");
        await using var server = await ServeProcess.StartAsync(_dir.File("server"));
        var outbox = _dir.File("traced.db");
        var create = await TestProcess.RunAsync(RepoPaths.CliDll, ["create", "--server", server.Address, "--key", "traced", "--outbox", outbox, "--outbox-engine", "litedb"], TimeSpan.FromSeconds(60));
        Assert.True(create.ExitCode == 0, create.Describe());
        var sturdy = create.StandardOutput.Split('\n').Single(l => l.StartsWith("sharerpc://", StringComparison.Ordinal)).Trim();

        var probe = "probe-" + Guid.NewGuid().ToString("N");
        var input = _dir.File("ops.jsonl");
        await File.WriteAllTextAsync(input, $$"""{"op":"put","collection":"c","key":"{{probe}}","value":"v"}""" + "\n");
        var trace = _dir.File("trace.txt");
        var run = await TestProcess.RunAsync(Strace,
            ["-f", "-s", "20000", "-e", "trace=openat,write,pwrite64,fsync,fdatasync", "-o", trace,
             "dotnet", RepoPaths.CliDll, "append", "--ref", sturdy, "--outbox", outbox, "--file", input, "--outbox-engine", "litedb"],
            TimeSpan.FromMinutes(2));
        Assert.True(run.ExitCode == 0, run.Describe());

        var lines = await File.ReadAllLinesAsync(trace);
        var log = LiteDbOutboxStore.LogPathOf(outbox);
        var fd = lines.Select(l => OpenAt().Match(l)).Last(m => m.Success && m.Groups["path"].Value == log).Groups["fd"].Value;
        var written = Array.FindIndex(lines, l => Regex.IsMatch(l, $@"\bpwrite64\({fd}, "".*{probe}") || Regex.IsMatch(l, $@"\bwrite\({fd}, "".*{probe}"));
        // Console.Out's descriptor is not always 1 (the runtime may use a duplicate of it): the text finds it.
        var enqueued = Array.FindIndex(lines, l => Regex.IsMatch(l, @"\bwrite\(\d+, ""enqueued 1\\n"""));
        Assert.True(written >= 0, $"the op's bytes were never written to the log (fd {fd})");
        Assert.True(enqueued > written, "\"enqueued 1\" was not printed after the op was written");
        var fsync = Array.FindIndex(lines, written, enqueued - written, l => Regex.IsMatch(l, $@"\b(fsync|fdatasync)\({fd}\b"));
        Assert.True(fsync > written, $"no fsync of {log} (fd {fd}) between the write of the op (trace line {written + 1}) and \"enqueued\" (line {enqueued + 1})");
    }

    // 1234 openat(AT_FDCWD, "/tmp/x/traced-log.db", O_RDWR|O_CREAT|O_CLOEXEC, 0600) = 23
    [GeneratedRegex("""openat\([^,]+, "(?<path>[^"]+)",.*\) = (?<fd>\d+)$""")]
    private static partial Regex OpenAt();
}
