using Sharerpc.V1;

namespace ShareRpc.Viewer;

/// <summary>The viewer page's address and links (docs/viewer.md).</summary>
public static class ShareRpcViewer
{
    /// <summary>Where the server serves the page (and, under it, <c>viewer.js</c> and <c>viewer.css</c>).</summary>
    public const string Path = "/view";

    /// <summary>
    /// <c>http://HOST:PORT/view#REF</c> (https for a <c>sharerpcs://</c> ref): the page on the ref's own
    /// server, the ref in the fragment, which a browser never sends to a server, a log or a proxy.
    /// Throws <see cref="SturdyRefFormatException"/> for a malformed ref.
    /// </summary>
    public static string LinkFor(string sturdyRef)
    {
        var parsed = SturdyRef.Parse(sturdyRef);
        return parsed.Address + Path + "#" + parsed;
    }
}
