using System.Text.RegularExpressions;

namespace ShareRpc.Docs.Tests;

/// <summary>
/// A fenced code block of a markdown file and the marker comment on the line before it:
/// <c>&lt;!-- code: PATH --&gt;</c> or <c>&lt;!-- code: PATH#REGION --&gt;</c> (the block is that file, or
/// that region of it, byte for byte), <c>&lt;!-- run: NAME --&gt;</c> (a test runs the block), or
/// <c>&lt;!-- not run: WHY --&gt;</c>.
/// </summary>
public sealed record CodeBlock(string File, int Line, string Language, string? MarkerKind, string? MarkerValue, string Text)
{
    public override string ToString() => $"{File}:{Line} ({Language}{(MarkerKind is null ? "" : ", " + MarkerKind + ": " + MarkerValue)})";
}

public static partial class Markdown
{
    /// <summary>The documents whose code is checked: the README and every guide.</summary>
    public static IEnumerable<string> Documents() =>
        new[] { "README.md" }.Concat(Directory.GetFiles(Repo.PathOf("docs/guides"), "*.md")
            .Select(f => Path.GetRelativePath(Repo.Root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal));

    public static IReadOnlyList<CodeBlock> Blocks(string relativePath)
    {
        var lines = Repo.Read(relativePath).Split('\n');
        var blocks = new List<CodeBlock>();
        string? previous = null;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (!line.StartsWith("```", StringComparison.Ordinal))
            {
                if (line.Trim().Length > 0)
                {
                    previous = line;
                }

                continue;
            }

            var language = line[3..].Trim();
            var start = i;
            var body = new List<string>();
            for (i++; i < lines.Length && !lines[i].TrimEnd('\r').StartsWith("```", StringComparison.Ordinal); i++)
            {
                body.Add(lines[i].TrimEnd('\r'));
            }

            var marker = previous is null ? null : MarkerPattern().Match(previous.Trim());
            blocks.Add(new CodeBlock(
                relativePath,
                start + 1,
                language,
                marker is { Success: true } ? marker.Groups[1].Value : null,
                marker is { Success: true } ? marker.Groups[2].Value.Trim() : null,
                string.Join('\n', body)));
            previous = null;
        }

        return blocks;
    }

    /// <summary>The block marked <c>&lt;!-- run: NAME --&gt;</c> in a document.</summary>
    public static CodeBlock RunBlock(string relativePath, string name) =>
        Blocks(relativePath).SingleOrDefault(b => b.MarkerKind == "run" && b.MarkerValue == name)
        ?? throw new InvalidOperationException($"{relativePath} has no block marked <!-- run: {name} -->");

    /// <summary>A whole file (<c>PATH</c>) or one region of it (<c>PATH#NAME</c>), as a code block shows it.</summary>
    public static string Source(string reference)
    {
        var hash = reference.IndexOf('#', StringComparison.Ordinal);
        var path = hash < 0 ? reference : reference[..hash];
        var text = Repo.Read(path).Replace("\r\n", "\n", StringComparison.Ordinal);
        if (hash < 0)
        {
            return text.TrimEnd('\n');
        }

        var region = reference[(hash + 1)..];
        var comment = path.EndsWith(".py", StringComparison.Ordinal) ? "#" : "//";
        var lines = text.Split('\n');
        var begin = Array.FindIndex(lines, l => l.Trim() == $"{comment} region {region}");
        if (begin < 0)
        {
            throw new InvalidOperationException($"{path} has no '{comment} region {region}'");
        }

        var end = Array.FindIndex(lines, begin + 1, l => l.Trim() == $"{comment} endregion");
        var body = lines[(begin + 1)..end];
        var indent = body.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join('\n', body.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));
    }

    [GeneratedRegex(@"^<!--\s*(code|run|not run):\s*(.+?)\s*-->$")]
    private static partial Regex MarkerPattern();
}
