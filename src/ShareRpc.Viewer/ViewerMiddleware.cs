using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace ShareRpc.Viewer;

/// <summary>
/// Answers <c>GET|HEAD /view</c>, <c>/view/viewer.js</c> and <c>/view/viewer.css</c> from the embedded
/// assets; every other request goes on. Every answer under <c>/view</c> carries the security headers
/// (docs/viewer.md, "Security"): a CSP that allows this origin's script, style and gRPC-Web calls
/// only, with Trusted Types required (no HTML sinks); no referrer (the page's address never leaves
/// it, though the fragment is never sent anyway); no MIME sniffing; no framing.
/// </summary>
internal sealed class ViewerMiddleware(RequestDelegate next)
{
    internal const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

    public Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments(ShareRpcViewer.Path, StringComparison.Ordinal, out var rest))
        {
            return next(context);
        }

        var response = context.Response;
        SetSecurityHeaders(response.Headers);
        var asset = ViewerAssets.Find(rest.Value ?? "");
        if (asset is null)
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }

        var method = context.Request.Method;
        if (!HttpMethods.IsGet(method) && !HttpMethods.IsHead(method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            response.Headers.Allow = "GET, HEAD";
            return Task.CompletedTask;
        }

        // Revalidated on each load (no-cache + ETag): a newer server's page is never mixed with an older cached script.
        response.Headers.CacheControl = "no-cache";
        response.Headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch.Contains(asset.ETag))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        response.ContentType = asset.ContentType;
        response.ContentLength = asset.Bytes.Length;
        return HttpMethods.IsHead(method) ? Task.CompletedTask : response.Body.WriteAsync(asset.Bytes).AsTask();
    }

    internal static void SetSecurityHeaders(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers[HeaderNames.XContentTypeOptions] = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
    }
}

/// <summary>The page, script and style sheet, read once from the embedded resources.</summary>
internal sealed record ViewerAsset(byte[] Bytes, string ContentType, string ETag);

internal static class ViewerAssets
{
    private static readonly Lazy<Dictionary<string, ViewerAsset>> s_assets = new(Load);

    /// <summary>The asset at a path under /view ("" or "/" is the page), or null.</summary>
    public static ViewerAsset? Find(string rest) => rest switch
    {
        "" or "/" => s_assets.Value["view.html"],
        "/viewer.js" => s_assets.Value["viewer.js"],
        "/viewer.css" => s_assets.Value["viewer.css"],
        _ => null,
    };

    private static Dictionary<string, ViewerAsset> Load()
    {
        var assets = new Dictionary<string, ViewerAsset>(StringComparer.Ordinal);
        foreach (var (name, type) in new[] { ("view.html", "text/html; charset=utf-8"), ("viewer.js", "text/javascript; charset=utf-8"), ("viewer.css", "text/css; charset=utf-8") })
        {
            using var stream = typeof(ViewerAssets).Assembly.GetManifestResourceStream("ShareRpc.Viewer." + name)
                ?? throw new InvalidOperationException($"The viewer asset {name} is not embedded: build src/ShareRpc.Viewer.");
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            var etag = "\"" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..32] + "\"";
            assets[name] = new ViewerAsset(bytes, type, etag);
        }

        return assets;
    }
}
