using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Grpc.Core;
using ShareRpc.Client;
using ShareRpc.Viewer;
using Sharerpc.V1;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// <c>sharerpc redeem | snapshot | delegate | revoke</c>: the capability verbs (docs/viewer.md, "The
/// CLI verbs"). Each takes <c>--ref</c>, prints text or, with <c>--json</c>, JSON; a failure is one
/// line on stderr (JSON with <c>--json</c>) and exit 1 when the call failed, 2 when the arguments
/// are wrong.
/// </summary>
internal static partial class CapabilityCommands
{
    private const int CallFailed = 1;
    private const int BadArguments = 2;

    // Readable JSON: quotes, '+' and non-ASCII as themselves (each line is one JSON value, not HTML).
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Redeem()
    {
        var (sturdyRef, json) = (RefOption("Sturdy ref to redeem."), JsonOption());
        var command = new Command("redeem", "Redeem a sturdy ref: its share, capability, rights, the share's epoch and cursor.") { sturdyRef, json };
        command.SetAction((parse, ct) => RunAsync(parse, json, "redeem", async client =>
        {
            var r = await client.RedeemAsync(RefOf(parse, sturdyRef), ct);
            var rights = r.Rights.Select(RightName).ToArray();
            var expires = r.LiveRefExpiresAt is { } e ? Utc(e.ToDateTimeOffset()) : null;
            if (parse.GetValue(json))
            {
                Console.WriteLine(new JsonObject
                {
                    ["share_id"] = r.ShareId,
                    ["capability_id"] = r.CapabilityId,
                    ["rights"] = new JsonArray([.. rights.Select(x => JsonValue.Create(x))]),
                    ["epoch"] = r.Epoch,
                    ["cursor"] = r.Cursor,
                    ["live_ref_expires_at"] = expires,
                }.ToJsonString(s_json));
            }
            else
            {
                Console.WriteLine($"share {r.ShareId}\ncapability {r.CapabilityId}\nrights {string.Join(',', rights)}\nepoch {r.Epoch}\ncursor {r.Cursor}\nlive ref expires {expires}");
            }

            return 0;
        }));
        return command;
    }

    public static Command Snapshot()
    {
        var (sturdyRef, json) = (RefOption("Sturdy ref of the share (READ)."), JsonOption());
        var collection = new Option<string>("--collection") { Description = "Only this collection (default: all).", DefaultValueFactory = _ => "" };
        var pageSize = new Option<int>("--page-size") { Description = "Documents per GetSnapshot call (0: the server's default).", DefaultValueFactory = _ => 0 };
        var command = new Command("snapshot", "Print the share's documents as JSON lines, read page by page (GetSnapshot).") { sturdyRef, collection, pageSize, json };
        command.SetAction((parse, ct) => RunAsync(parse, json, "snapshot", async client =>
        {
            if (parse.GetValue(pageSize) < 0) throw new ArgumentException("--page-size must be 0 (the server's default) or more");
            var (documents, pages, token) = (0L, 0, "");
            ulong? first = null, last = null;
            do
            {
                var page = await client.GetSnapshotAsync(RefOf(parse, sturdyRef), parse.GetValue(collection)!, parse.GetValue(pageSize), token, ct);
                (first, last, pages, token) = (first ?? page.Cursor, page.Cursor, pages + 1, page.NextPageToken);
                foreach (var d in page.Documents)
                {
                    Console.WriteLine(DocumentJson(d));
                    documents++;
                }
            }
            while (!string.IsNullOrEmpty(token));

            // Pages answer at the head when each is read (docs/design.md, "Service"): say which heads they saw.
            if (!parse.GetValue(json)) Console.Error.WriteLine($"{documents} documents in {pages} pages, read at cursor {first}{(first == last ? "" : $" to {last}")}");
            return 0;
        }));
        return command;
    }

    public static Command Delegate()
    {
        var (sturdyRef, json) = (RefOption("Sturdy ref to delegate from (DELEGATE)."), JsonOption());
        var rights = new Option<string>("--rights") { Description = "Rights of the child, a subset of the parent's: read, append, delegate, revoke (comma-separated)." };
        var expires = new Option<string?>("--expires") { Description = "Lifetime of the child: 90s, 30m, 1h, 7d or hh:mm:ss (default: none)." };
        var note = new Option<string>("--note") { Description = "A note stored with the capability.", DefaultValueFactory = _ => "" };
        var command = new Command("delegate", "Mint a child sturdy ref with a subset of the rights; prints it and, for read rights, its viewer link.") { sturdyRef, rights, expires, note, json };
        command.SetAction((parse, ct) => RunAsync(parse, json, "delegate", async client =>
        {
            var wanted = ParseRights(parse.GetValue(rights));
            DateTimeOffset? until = parse.GetValue(expires) is { } e ? DateTimeOffset.UtcNow + ParseDuration(e) : null;
            var child = await client.DelegateAsync(RefOf(parse, sturdyRef), wanted, until, parse.GetValue(note)!, ct);
            var link = wanted.Contains(Right.Read) ? ShareRpcViewer.LinkFor(child.SturdyRef) : null;
            if (parse.GetValue(json))
            {
                Console.WriteLine(new JsonObject
                {
                    ["capability_id"] = child.CapabilityId,
                    ["sturdy_ref"] = child.SturdyRef,
                    ["rights"] = new JsonArray([.. wanted.Select(r => JsonValue.Create(RightName(r)))]),
                    ["expires_at"] = until is { } u ? Utc(u) : null,
                    ["viewer_link"] = link,
                }.ToJsonString(s_json));
            }
            else
            {
                Console.WriteLine(child.SturdyRef);
                if (link is not null) Console.WriteLine(link);
            }

            return 0;
        }));
        return command;
    }

    public static Command Revoke()
    {
        var (sturdyRef, json) = (RefOption("Sturdy ref with REVOKE (the capability to revoke must be it or one it delegated)."), JsonOption());
        var capability = new Option<string?>("--capability") { Description = "Revoke this capability and everything it delegated." };
        var all = new Option<bool>("--all") { Description = "Revoke everything --ref delegated (the caller keeps its own)." };
        var command = new Command("revoke", "Revoke a capability (and what it delegated), or all that --ref delegated; bumps the share's epoch.") { sturdyRef, capability, all, json };
        command.SetAction((parse, ct) => RunAsync(parse, json, "revoke", async client =>
        {
            var target = parse.GetValue(capability);
            if ((target is null) == !parse.GetValue(all)) throw new ArgumentException("give exactly one of --capability ID and --all");
            var r = target is null ? await client.RevokeAllAsync(RefOf(parse, sturdyRef), ct) : await client.RevokeAsync(RefOf(parse, sturdyRef), target, ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(new JsonObject { ["epoch"] = r.Epoch, ["revoked_capability_ids"] = new JsonArray([.. r.RevokedCapabilityIds.Select(x => JsonValue.Create(x))]) }.ToJsonString(s_json));
            }
            else
            {
                Console.WriteLine($"revoked {r.RevokedCapabilityIds.Count} {(r.RevokedCapabilityIds.Count == 1 ? "capability" : "capabilities")} ({string.Join(", ", r.RevokedCapabilityIds)}); epoch {r.Epoch}");
            }

            return 0;
        }));
        return command;
    }

    private static Option<string?> RefOption(string description) => new("--ref") { Description = description };

    private static Option<bool> JsonOption() => new("--json") { Description = "Print JSON (and errors as one JSON line on stderr)." };

    /// <summary>--ref, checked here rather than by the parser so that its absence is one line too.</summary>
    private static string RefOf(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) is { Length: > 0 } value ? value : throw new ArgumentException("--ref is required");

    /// <summary>Runs a verb: its output, or one line saying why not (exit 1: the call failed; 2: the arguments are wrong).</summary>
    private static async Task<int> RunAsync(ParseResult parse, Option<bool> json, string verb, Func<ShareRpcClient, Task<int>> body)
    {
        try
        {
            await using var client = new ShareRpcClient();
            return await body(client);
        }
        catch (SturdyRefFormatException e)
        {
            return Fail(parse.GetValue(json), verb, BadArguments, "INVALID_ARGUMENT", null, "--ref: " + e.Message);
        }
        catch (ArgumentException e)
        {
            return Fail(parse.GetValue(json), verb, BadArguments, "INVALID_ARGUMENT", null, e.Message);
        }
        catch (RpcException e)
        {
            var typed = e as ShareRpcCallException;
            return Fail(parse.GetValue(json), verb, CallFailed, CodeName(e.StatusCode), typed?.Reason, e.Status.Detail);
        }
    }

    private static int Fail(bool json, string verb, int exitCode, string code, string? reason, string message)
    {
        var oneLine = Whitespace().Replace(message, " ").Trim();
        Console.Error.WriteLine(json
            ? new JsonObject { ["error"] = new JsonObject { ["code"] = code, ["reason"] = reason, ["message"] = oneLine } }.ToJsonString(s_json)
            : $"sharerpc {verb}: {code}{(reason is null ? "" : $" ({reason})")}: {oneLine}");
        return exitCode;
    }

    internal static List<Right> ParseRights(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ArgumentException("--rights is required: read, append, delegate, revoke (comma-separated)");
        var rights = new List<Right>();
        foreach (var name in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var right = name.ToLowerInvariant() switch
            {
                "read" => Right.Read,
                "append" => Right.Append,
                "delegate" => Right.Delegate,
                "revoke" => Right.Revoke,
                _ => throw new ArgumentException($"--rights: '{name}' is not a right (read, append, delegate, revoke)"),
            };
            if (!rights.Contains(right)) rights.Add(right);
        }

        return rights.Count > 0 ? rights : throw new ArgumentException("--rights names no right");
    }

    /// <summary>90s, 30m, 1h, 7d, or a TimeSpan (hh:mm:ss); must be positive.</summary>
    internal static TimeSpan ParseDuration(string text, string option = "--expires")
    {
        var m = DurationPattern().Match(text.Trim());
        TimeSpan value;
        if (m.Success)
        {
            var n = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            value = m.Groups[2].Value switch { "s" => TimeSpan.FromSeconds(n), "m" => TimeSpan.FromMinutes(n), "h" => TimeSpan.FromHours(n), _ => TimeSpan.FromDays(n) };
        }
        else if (!TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value))
        {
            throw new ArgumentException($"{option}: '{text}' is not a duration (90s, 30m, 1h, 7d or hh:mm:ss)");
        }

        return value > TimeSpan.Zero ? value : throw new ArgumentException($"{option} must be a positive duration");
    }

    /// <summary>A document as one JSON object: the value as text when it is text, else base64.</summary>
    internal static string DocumentJson(Document d)
    {
        var o = new JsonObject { ["collection"] = d.Collection, ["key"] = d.Key, ["version"] = d.Version, ["cursor"] = d.Cursor, ["content_type"] = d.ContentType };
        if (AsText(d.Value.Span, d.ContentType) is { } text) o["value"] = text;
        else o["value_base64"] = Convert.ToBase64String(d.Value.Span);
        return o.ToJsonString(s_json);
    }

    private static string? AsText(ReadOnlySpan<byte> value, string contentType)
    {
        var ct = contentType.ToLowerInvariant();
        var declaredText = ct.StartsWith("text/", StringComparison.Ordinal) || ct.Contains("json", StringComparison.Ordinal) || ct.Contains("charset=utf-8", StringComparison.Ordinal);
        if (!declaredText && ct.Length > 0) return null; // e.g. application/x-protobuf: bytes, even when they happen to be UTF-8
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(value);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }

        return declaredText || !text.Any(c => char.IsControl(c) && c is not ('\t' or '\r' or '\n')) ? text : null;
    }

    private static string Utc(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string RightName(Right r) => r.ToString().ToLowerInvariant();

    /// <summary>PermissionDenied → PERMISSION_DENIED, as gRPC names codes on the wire.</summary>
    private static string CodeName(StatusCode code) =>
        string.Concat(code.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : char.ToUpperInvariant(c).ToString()));

    [GeneratedRegex(@"^(\d{1,9})(s|m|h|d)$")]
    private static partial Regex DurationPattern();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
