namespace ShareRpc.TestSupport;

/// <summary>
/// <c>sharerpc serve</c> as a real process (the built CLI): started on a port, ready once it
/// prints "listening on ADDRESS"; SIGKILL, SIGTERM and restarts on the same port and data dir.
/// </summary>
public sealed class ServeProcess : IAsyncDisposable
{
    private ServeProcess(TestProcess process, string address)
    {
        Process = process;
        Address = address;
    }

    public TestProcess Process { get; }

    /// <summary>What clients dial: http://127.0.0.1:PORT (https:// with --tls-cert).</summary>
    public string Address { get; }

    /// <summary>
    /// Starts <c>sharerpc serve --port PORT --data DATA_DIR [extra…]</c> and waits for its
    /// "listening on" line. Port 0 (default): a free port, chosen here so a restart can reuse it.
    /// </summary>
    public static Task<ServeProcess> StartAsync(string dataDir, int port = 0, params string[] extra) => StartAsync(dataDir, null, port, extra);

    /// <summary>As <see cref="StartAsync(string, int, string[])"/>, with extra environment variables (OTEL_*, …).</summary>
    public static async Task<ServeProcess> StartAsync(string dataDir, IReadOnlyDictionary<string, string>? environment, int port = 0, params string[] extra)
    {
        if (port == 0)
        {
            port = Ports.Free();
        }

        var process = TestProcess.Start(RepoPaths.CliDll, ["serve", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data", dataDir, .. extra], workingDirectory: null, environment);
        try
        {
            var line = await process.WaitForLineAsync(l => l.StartsWith("listening on ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            return new ServeProcess(process, line["listening on ".Length..].Trim());
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>The port it listens on.</summary>
    public int Port => new Uri(Address).Port;

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
