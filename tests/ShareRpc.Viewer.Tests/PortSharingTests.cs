using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Net.Client;
using Grpc.Net.Client.Web;
using ShareRpc.TestSupport;
using Sharerpc.V1;

namespace ShareRpc.Viewer.Tests;

/// <summary>One real <c>sharerpc serve</c> for the port and header tests.</summary>
public sealed class ServeFixture : IAsyncLifetime
{
    private readonly TempDir _dir = new("sharerpc-viewer-port-");

    public ServeProcess Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ServeProcess.StartAsync(_dir.File("data"));

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>
/// The cleartext port speaks h2c with prior knowledge (gRPC clients) and HTTP/1.1 (browsers: the
/// page, gRPC-Web) at once (docs/decisions.md, "HTTP/1.1 and h2c on one cleartext port"), and the
/// page is served with its security headers (docs/viewer.md, "Security").
/// </summary>
public sealed class PortSharingTests(ServeFixture fixture) : IClassFixture<ServeFixture>
{
    private string Address => fixture.Server.Address;

    private static async Task<HttpResponseMessage> GetAsync(string url, Version version, HttpMethod? method = null, string? ifNoneMatch = null)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        if (ifNoneMatch is not null) request.Headers.TryAddWithoutValidation("If-None-Match", ifNoneMatch);
        var response = await http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private static async Task<RedeemShareResponse> CreateAndRedeemAsync(GrpcChannel channel)
    {
        var stub = Calls.Stub(channel);
        var created = await stub.CreateShareAsync(new CreateShareRequest
        {
            ShareKey = "port-" + Guid.NewGuid().ToString("N"),
            OwnerSecret = Google.Protobuf.ByteString.CopyFrom(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
        });
        return await stub.RedeemShareAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
    }

    [Fact]
    public async Task Grpc_over_h2c_the_page_over_HTTP11_and_grpc_web_over_HTTP11_share_one_port()
    {
        using (var h2c = GrpcChannel.ForAddress(Address))
        {
            Assert.NotEmpty((await CreateAndRedeemAsync(h2c)).LiveRef);
        }

        var page = await GetAsync(Address + "/view", HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal(HttpVersion.Version11, page.Version);
        Assert.Contains("<div id=\"app\"></div>", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpVersion.Version20, (await GetAsync(Address + "/view", HttpVersion.Version20)).Version); // h2c prior knowledge too

        // What the page does: gRPC-Web over HTTP/1.1 on the same port.
        var web = new GrpcWebHandler(GrpcWebMode.GrpcWeb, new SocketsHttpHandler { UseProxy = false });
        using var webChannel = GrpcChannel.ForAddress(Address, new GrpcChannelOptions
        {
            HttpHandler = web,
            HttpVersion = HttpVersion.Version11,
            HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        });
        Assert.NotEmpty((await CreateAndRedeemAsync(webChannel)).LiveRef);
    }

    [Fact]
    public async Task A_silent_connection_blocks_nobody_and_a_slow_one_is_still_sorted()
    {
        using var silent = new TcpClient();
        await silent.ConnectAsync(IPAddress.Loopback, fixture.Server.Port); // sends nothing: held in the sort until its timeout

        using (var h2c = GrpcChannel.ForAddress(Address))
        {
            Assert.NotEmpty((await CreateAndRedeemAsync(h2c)).LiveRef);
        }

        using var slow = new TcpClient();
        await slow.ConnectAsync(IPAddress.Loopback, fixture.Server.Port);
        var stream = slow.GetStream();
        foreach (var b in "GET /view HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"u8.ToArray())
        {
            await stream.WriteAsync(new[] { b }); // one byte per write: "G" alone does not decide, nor does "GE"
            await stream.FlushAsync();
        }

        using var reader = new StreamReader(stream, Encoding.ASCII);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal("HTTP/1.1 200 OK", await reader.ReadLineAsync(cts.Token));
    }

    [Theory]
    [InlineData("/view", "text/html; charset=utf-8", "view.html")]
    [InlineData("/view/viewer.js", "text/javascript; charset=utf-8", "viewer.js")]
    [InlineData("/view/viewer.css", "text/css; charset=utf-8", "viewer.css")]
    public async Task The_page_and_its_assets_are_the_committed_files_with_the_security_headers(string path, string contentType, string file)
    {
        var response = await GetAsync(Address + path, HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(contentType, response.Content.Headers.ContentType?.ToString());
        AssertSecurityHeaders(response);
        var committed = await File.ReadAllBytesAsync(Path.Combine(RepoPaths.Root, "src", "ShareRpc.Viewer", "assets", file));
        Assert.Equal(committed, await response.Content.ReadAsByteArrayAsync());

        // Revalidated, not re-sent; HEAD has no body; nothing but GET and HEAD.
        var etag = response.Headers.ETag!.Tag;
        Assert.Equal(HttpStatusCode.NotModified, (await GetAsync(Address + path, HttpVersion.Version11, ifNoneMatch: etag)).StatusCode);
        var head = await GetAsync(Address + path, HttpVersion.Version11, HttpMethod.Head);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await GetAsync(Address + path, HttpVersion.Version11, HttpMethod.Post)).StatusCode);
    }

    [Fact]
    public async Task Anything_else_under_view_is_404_with_the_same_headers()
    {
        var response = await GetAsync(Address + "/view/secrets.txt", HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        AssertSecurityHeaders(response);
    }

    private static void AssertSecurityHeaders(HttpResponseMessage response)
    {
        var csp = string.Join(";", response.Headers.GetValues("Content-Security-Policy"));
        foreach (var directive in new[] { "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "require-trusted-types-for 'script'" })
        {
            Assert.Contains(directive, csp, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("unsafe", csp, StringComparison.Ordinal);
        Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
    }
}
