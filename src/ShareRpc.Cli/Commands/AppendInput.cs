using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// The input of <c>sharerpc append</c>, read and checked whole before anything is enqueued (issue 13,
/// item 8; docs/client.md, "CLI append"): each line is parsed, given its op id and validated against
/// the server's limits, and written to a private temporary file as a length-prefixed Op. A bad line
/// fails the run before the outbox is touched; memory holds one line at a time, however long the input.
/// </summary>
internal sealed class AppendInput : IDisposable
{
    private readonly FileStream _file;

    private AppendInput(FileStream file, long count)
    {
        _file = file;
        Count = count;
    }

    /// <summary>Ops read (blank lines are skipped).</summary>
    public long Count { get; }

    /// <summary>Reads and checks every line of <paramref name="input"/>; throws <see cref="FormatException"/> naming the first bad line.</summary>
    public static async Task<AppendInput> ReadAsync(TextReader input, string shareId, ShareRpcClientLimits limits, CancellationToken cancellationToken)
    {
        var file = CreateTempFile();
        try
        {
            long count = 0, lineNo = 0;
            string? line;
            while ((line = await input.ReadLineAsync(cancellationToken)) is not null)
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                var op = ParseOp(line, lineNo, shareId);
                try
                {
                    OpValidator.Validate(op, limits);
                }
                catch (InvalidOpException ex)
                {
                    throw new FormatException($"line {lineNo}: {ex.Message}");
                }

                op.WriteDelimitedTo(file);
                count++;
            }

            await file.FlushAsync(cancellationToken);
            file.Position = 0;
            return new AppendInput(file, count);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    /// <summary>The checked ops, in input order, in chunks of at most <paramref name="maxOps"/> ops and about <paramref name="maxBytes"/> bytes.</summary>
    public IEnumerable<List<Op>> Chunks(int maxOps, long maxBytes)
    {
        _file.Position = 0;
        var chunk = new List<Op>();
        long bytes = 0;
        for (long i = 0; i < Count; i++)
        {
            var op = Op.Parser.ParseDelimitedFrom(_file);
            chunk.Add(op);
            bytes += op.CalculateSize();
            if (chunk.Count >= maxOps || bytes >= maxBytes)
            {
                yield return chunk;
                chunk = [];
                bytes = 0;
            }
        }

        if (chunk.Count > 0)
        {
            yield return chunk;
        }
    }

    public void Dispose() => _file.Dispose();

    /// <summary>
    /// One JSON line as an op. Its op id is the line's <c>op_id</c> field when present, else derived
    /// from the share, the line number and the line itself (<see cref="DerivedOpId"/>): the same file sent
    /// again to the same share gives the same ids, so the server answers DUPLICATE instead of
    /// applying it twice. The same line at another line number is another op.
    /// </summary>
    internal static Op ParseOp(string line, long lineNo, string shareId)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(line);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"line {lineNo}: not JSON ({ex.Message})");
        }

        string Str(string name, bool required = true)
        {
            try
            {
                return node?[name]?.GetValue<string>() ?? (required ? throw new FormatException($"line {lineNo}: \"{name}\" is missing") : "");
            }
            catch (InvalidOperationException)
            {
                throw new FormatException($"line {lineNo}: \"{name}\" must be a string");
            }
        }

        ByteString Value() => node?["value"] switch
        {
            null => ByteString.Empty,
            JsonValue v when v.TryGetValue<string>(out var s) => ByteString.CopyFromUtf8(s),
            var other => ByteString.CopyFromUtf8(other.ToJsonString()),
        };

        var contentType = node?["value"] is JsonValue sv && sv.TryGetValue<string>(out _) ? "text/plain; charset=utf-8" : "application/json";
        var op = Str("op") switch
        {
            "put" => new Op { Put = new Put { Collection = Str("collection"), Key = Str("key"), Value = Value(), ContentType = contentType } },
            "delete" => new Op { Delete = new Delete { Collection = Str("collection"), Key = Str("key") } },
            "append" => new Op { Append = new Append { Collection = Str("collection"), Value = Value(), ContentType = contentType } },
            var other => throw new FormatException($"line {lineNo}: \"op\" must be put, delete or append, not \"{other}\""),
        };
        op.OpId = Str("op_id", required: false) is { Length: > 0 } given ? given : DerivedOpId(shareId, lineNo, line);
        return op;
    }

    /// <summary>
    /// The op id of a line without <c>op_id</c>: an RFC 9562 UUIDv8 of 40 bits of line number
    /// (big-endian, first) and 82 bits of SHA-256(share id, line number, line). Deterministic, so a
    /// rerun gives the same ids; ascending with the line number, so a large input's ops land at
    /// one end of the server's unique op-id index, as the SDK's UUIDv7 ids do (docs/design.md,
    /// "Performance notes": random ids cost the server a third of its apply rate). Two lines share
    /// an id only if their line numbers are equal and 82 bits of their hashes collide.
    /// </summary>
    internal static string DerivedOpId(string shareId, long lineNo, string line)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{shareId}\n{lineNo}\n{line}"));
        Span<byte> id = stackalloc byte[16];
        for (var i = 0; i < 5; i++)
        {
            id[i] = (byte)(lineNo >> (8 * (4 - i)));
        }

        id[5] = hash[0];
        id[6] = (byte)(0x80 | (hash[1] & 0x0F)); // version 8
        id[7] = hash[2];
        id[8] = (byte)(0x80 | (hash[3] & 0x3F)); // RFC 9562 variant
        hash.AsSpan(4, 7).CopyTo(id[9..]);
        return new Guid(id, bigEndian: true).ToString();
    }

    /// <summary>A private (0600) temporary file, deleted when closed: it holds share contents.</summary>
    private static FileStream CreateTempFile()
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.None,
            Options = FileOptions.DeleteOnClose,
            BufferSize = 1 << 16,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(Path.Combine(Path.GetTempPath(), $"sharerpc-append-{Guid.NewGuid():N}.ops"), options);
    }
}
