namespace ShareRpc.Docs.Tests;

/// <summary>
/// docs/guides/any-language.md: stubs generated with the documented protoc command, then
/// docs/guides/examples/python_client.py (grpcio, the system python3) against a real server.
/// </summary>
public sealed class PythonClientTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Python_client_appends_once_reads_back_and_sees_reasons()
    {
        var stubs = await Shell.RunAsync("docs/guides/any-language.md", "python-stubs", _dir.Path);
        Assert.True(stubs.ExitCode == 0, stubs.ToString());
        Assert.True(File.Exists(Path.Combine(_dir.Path, "gen", "sharerpc", "v1", "share_rpc_pb2_grpc.py")), stubs.ToString());

        var run = await Shell.RunAsync("docs/guides/any-language.md", "python-client", _dir.Path);
        Assert.True(run.ExitCode == 0, run.ToString());

        // The guide shows the output it prints; the run must print exactly that.
        var shown = Markdown.Blocks("docs/guides/any-language.md").First(b => b.Language == "text").Text;
        Assert.Equal(shown.Split('\n'), run.Output.TrimEnd('\n').Split('\n'));
    }
}
