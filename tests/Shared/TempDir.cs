using Microsoft.Data.Sqlite;

namespace ShareRpc.TestSupport;

/// <summary>A temp dir for a test's files (outboxes, server data), removed at dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "sharerpc-test-") => Path = Directory.CreateTempSubdirectory(prefix).FullName;

    public string Path { get; }

    /// <summary>A path inside the dir (the file is not created).</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        // Pooled SQLite connections keep the files open.
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Path, true);
        }
        catch (IOException)
        {
            // a child process may still hold a file for a moment; the OS temp cleaner gets it
        }
    }
}
