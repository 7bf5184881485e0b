// The choice of outbox engine (docs/client.md, "Outbox stores"): SQLite in this package, LiteDB in ShareRpc.Client.LiteDb.
namespace ShareRpc.Client.Outbox;

/// <summary>
/// The engine that keeps the durable outbox file: <see cref="Sqlite"/> (the default), or
/// <c>LiteDbOutboxEngine</c> from the ShareRpc.Client.LiteDb package for an application that already
/// embeds LiteDB. docs/client.md, "Outbox stores", says what each one guarantees on a crash and on
/// power loss. Not meant to be derived from outside ShareRpc.
/// </summary>
public abstract class OutboxEngine
{
    // Internal: the engines are ShareRpc's own (this package and ShareRpc.Client.LiteDb, a friend assembly).
    internal OutboxEngine()
    {
    }

    /// <summary>SQLite (WAL, fsync per commit by default): power-loss-safe, several processes may open the file.</summary>
    public static OutboxEngine Sqlite { get; } = new SqliteOutboxEngine();

    /// <summary>The engine's name as the CLI spells it (<c>--outbox-engine</c>): "sqlite", "litedb".</summary>
    public abstract string Name { get; }

    public override string ToString() => Name;

    /// <summary>
    /// Opens (or creates) the outbox at <paramref name="path"/>. A file another engine wrote is refused
    /// with one clear line naming that engine, before this engine reads a byte of it.
    /// </summary>
    internal IOutboxStore Open(string path, OutboxOptions? options = null, TimeProvider? time = null)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (OutboxFileKind.Sniff(full) is { } kind && kind != Name)
        {
            throw new IOException($"The outbox {full} is a {kind} outbox, not a {Name} one: open it with the {kind} engine (ShareRpcClientOptions.OutboxEngine; sharerpc --outbox-engine {kind}).");
        }

        return OpenStore(full, options ?? new OutboxOptions(), time ?? TimeProvider.System);
    }

    /// <summary>Opens the store itself (the file, if it exists, is not another engine's).</summary>
    internal abstract IOutboxStore OpenStore(string fullPath, OutboxOptions options, TimeProvider time);
}

/// <summary>The SQLite engine: <see cref="OutboxStore"/>.</summary>
internal sealed class SqliteOutboxEngine : OutboxEngine
{
    public override string Name => "sqlite";

    internal override IOutboxStore OpenStore(string fullPath, OutboxOptions options, TimeProvider time) => OutboxStore.Open(fullPath, options, time);
}

/// <summary>Which engine wrote a file, from its first bytes (both formats begin with a fixed text).</summary>
internal static class OutboxFileKind
{
    // SQLite: "SQLite format 3\0" at offset 0 (sqlite.org/fileformat.html, "The Database Header").
    private static ReadOnlySpan<byte> SqliteMagic => "SQLite format 3\0"u8;

    // LiteDB 5: "** This is a LiteDB file **" in the header page, after its 32-byte page header (HeaderPage.HEADER_INFO).
    private static ReadOnlySpan<byte> LiteDbMagic => "** This is a LiteDB file **"u8;

    private const int LiteDbMagicOffset = 32;

    /// <summary>"sqlite", "litedb", or null (no file, too short, or neither).</summary>
    public static string? Sniff(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var head = new byte[LiteDbMagicOffset + LiteDbMagic.Length];
        int read;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            read = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }

        var bytes = head.AsSpan(0, read);
        if (bytes.StartsWith(SqliteMagic))
        {
            return "sqlite";
        }

        return bytes.Length >= head.Length && bytes[LiteDbMagicOffset..].SequenceEqual(LiteDbMagic) ? "litedb" : null;
    }
}
