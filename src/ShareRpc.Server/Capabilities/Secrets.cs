using System.Security.Cryptography;

namespace ShareRpc.Server.Capabilities;

/// <summary>Secrets are kept only as SHA-256 hashes and compared in constant time.</summary>
internal static class Secrets
{
    public const int MinSecretBytes = 32;

    public static byte[] Hash(ReadOnlySpan<byte> secret) => SHA256.HashData(secret);

    public static bool Matches(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> storedHash)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(secret, hash);
        return CryptographicOperations.FixedTimeEquals(hash, storedHash);
    }

    /// <summary>A new id for shares and capabilities: a UUIDv7 in 32 lower-case hex digits (time-ordered, URL-safe).</summary>
    public static string NewId() => Guid.CreateVersion7().ToString("N");
}

/// <summary>
/// The HMAC key for live refs: 32 random bytes in <c>server.key</c> in the data directory, created
/// on first start with mode 0600 (written to a temp file, then moved into place, so concurrent
/// first starts agree on one key). Kept outside the database.
/// </summary>
internal static class ServerKey
{
    public const string FileName = "server.key";
    public const int KeyBytes = 32;

    /// <summary>The key at <c>DataDirectory/server.key</c>, created (mode 0600) if missing.</summary>
    public static byte[] LoadOrCreate(string dataDirectory)
    {
        // A data directory the server creates is its user's alone (0700): it holds the key and the shares.
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dataDirectory);
        else if (!Directory.Exists(dataDirectory)) Directory.CreateDirectory(dataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return LoadOrCreateFile(Path.Combine(dataDirectory, FileName));
    }

    /// <summary>
    /// The key in <paramref name="path"/>, created (mode 0600) if missing. Several server processes
    /// on one database must use the same key file: a live ref signed by one is then honoured by all.
    /// Creation is race-free: the first process to publish the file wins, the others read it.
    /// </summary>
    public static byte[] LoadOrCreateFile(string path)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir) Directory.CreateDirectory(dir);
        if (File.Exists(path)) return Read(path);

        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var key = RandomNumberGenerator.GetBytes(KeyBytes);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(temp, options))
        {
            fs.Write(key);
            fs.Flush(flushToDisk: true);
        }
        try
        {
            File.Move(temp, path, overwrite: false);
            return key;
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(temp);
            return Read(path); // another process won the race
        }
    }

    private static byte[] Read(string path)
    {
        var key = File.ReadAllBytes(path);
        if (key.Length < KeyBytes)
            throw new InvalidDataException($"{path} holds {key.Length} bytes; a server key needs {KeyBytes}");
        return key;
    }
}
