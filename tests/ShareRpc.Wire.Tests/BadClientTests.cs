using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;

namespace ShareRpc.Wire.Tests;

/// <summary>
/// A hand-made HTTP/2 peer sends what a well-behaved gRPC client never would. Each case gets
/// its status, and the server then serves the next call normally.
/// </summary>
public class BadClientTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpMessageInvoker _raw = null!;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _raw = new HttpMessageInvoker(new SocketsHttpHandler());
    }

    public async Task DisposeAsync()
    {
        _raw.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Wrong_content_type_is_415_with_a_grpc_status()
    {
        var r = await SendAsync(TestServer.Unary.FullName, Frame("hi"), contentType: "application/json");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, r.HttpStatus);
        Assert.Equal("13", r.GrpcStatus);
        Assert.Contains("application/json", r.GrpcMessage);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task A_truncated_message_is_invalid_argument()
    {
        var frame = Frame("hello");
        var r = await SendAsync(TestServer.Unary.FullName, frame[..^2]);
        Assert.Equal(HttpStatusCode.OK, r.HttpStatus);
        Assert.Equal("3", r.GrpcStatus);
        Assert.Contains("Incomplete", r.GrpcMessage);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task A_length_prefix_over_the_limit_is_resource_exhausted()
    {
        // Claims 2 MiB against the 1 MiB limit, and sends only the five header bytes.
        var r = await SendAsync(TestServer.Unary.FullName, new byte[] { 0x00, 0x00, 0x20, 0x00, 0x00 });
        Assert.Equal("8", r.GrpcStatus);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task A_compressed_flag_without_grpc_encoding_is_internal()
    {
        var frame = Frame("hi");
        frame[0] = 1;
        var r = await SendAsync(TestServer.Unary.FullName, frame);
        Assert.Equal("13", r.GrpcStatus);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task An_unknown_grpc_encoding_is_unimplemented()
    {
        var r = await SendAsync(TestServer.Unary.FullName, Frame("hi"), encoding: "snappy");
        Assert.Equal("12", r.GrpcStatus);
        Assert.Contains("snappy", r.GrpcMessage);
        Assert.Contains("gzip", r.AcceptEncoding);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task A_request_that_does_not_parse_is_invalid_argument_naming_the_method()
    {
        var r = await SendAsync(TestServer.StrictUnary.FullName, Frame("bad"));
        Assert.Equal("3", r.GrpcStatus);
        Assert.Contains(TestServer.StrictUnary.FullName, r.GrpcMessage);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task A_malformed_grpc_timeout_is_invalid_argument()
    {
        var r = await SendAsync(TestServer.Unary.FullName, Frame("hi"), timeout: "123456789S");
        Assert.Equal("3", r.GrpcStatus);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task Two_messages_on_a_unary_method_is_invalid_argument()
    {
        var r = await SendAsync(TestServer.Unary.FullName, Frame("a").Concat(Frame("b")).ToArray());
        Assert.Equal("3", r.GrpcStatus);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task Http11_on_the_h2c_endpoint_is_refused_at_the_connection_and_others_are_served()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(_server.Address.Host, _server.Address.Port);
        var stream = tcp.GetStream();
        var request = Encoding.ASCII.GetBytes($"POST {TestServer.Unary.FullName} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n");
        await stream.WriteAsync(request);
        var buffer = new byte[4096];
        var total = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int n;
        while ((n = await stream.ReadAsync(buffer.AsMemory(total), cts.Token)) > 0)
        {
            total += n;
        }

        // Kestrel refuses before any handler runs (a connection-level 400, then close): no 426 is
        // possible on a cleartext HTTP/2-only endpoint, and the request never reaches gRPC.
        var text = Encoding.ASCII.GetString(buffer, 0, total);
        Assert.StartsWith("HTTP/1.1 400", text);
        Assert.Contains("HTTP/2 only endpoint", text);
        Assert.DoesNotContain("grpc-status", text);
        await AssertServerStillServes();
    }

    [Fact]
    public async Task Http11_on_a_tls_endpoint_is_426()
    {
        await using var tls = await TestServer.StartAsync(tls: true);
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        using var http11 = new HttpMessageInvoker(handler);
        var req = new HttpRequestMessage(HttpMethod.Post, new Uri(tls.Address, TestServer.Unary.FullName))
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(Frame("hi")),
        };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        using var resp = await http11.SendAsync(req, CancellationToken.None);
        Assert.Equal(HttpStatusCode.UpgradeRequired, resp.StatusCode);
        Assert.Equal("13", resp.Headers.GetValues("grpc-status").Single());
        using var channel = tls.CreateChannel();
        Assert.Equal("still", await channel.AsyncUnaryCall(TestServer.Unary, "still"));
    }

    private async Task AssertServerStillServes()
    {
        using var channel = _server.CreateChannel();
        Assert.Equal("next", await channel.AsyncUnaryCall(TestServer.Unary, "next"));
    }

    private static byte[] Frame(string s)
    {
        var payload = Encoding.UTF8.GetBytes(s);
        var frame = new byte[5 + payload.Length];
        GrpcFraming.WriteHeader(frame, false, payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    private async Task<RawResult> SendAsync(string path, byte[] body, string contentType = "application/grpc", string? encoding = null, string? timeout = null)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Address, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        req.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        req.Headers.TryAddWithoutValidation("te", "trailers");
        if (encoding is not null)
        {
            req.Headers.TryAddWithoutValidation("grpc-encoding", encoding);
        }

        if (timeout is not null)
        {
            req.Headers.TryAddWithoutValidation("grpc-timeout", timeout);
        }

        using var resp = await _raw.SendAsync(req, CancellationToken.None);
        await resp.Content.ReadAsByteArrayAsync();
        string? Get(string name) =>
            resp.Headers.TryGetValues(name, out var v) ? v.First()
            : resp.TrailingHeaders.TryGetValues(name, out var t) ? t.First()
            : null;
        return new RawResult(resp.StatusCode, Get("grpc-status"), PercentEncoding.Decode(Get("grpc-message")), Get("grpc-accept-encoding") ?? "");
    }

    private sealed record RawResult(HttpStatusCode HttpStatus, string? GrpcStatus, string GrpcMessage, string AcceptEncoding);
}
