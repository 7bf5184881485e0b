using System.Net;
using System.Net.Sockets;
using System.Text;
using Sharerpc.V1;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// A hand-made HTTP/2 peer (<see cref="RawGrpc"/>) sends the ShareRpc methods of <c>sharerpc serve</c>
/// what a well-behaved gRPC client never would. Each case gets the status the contract names
/// (docs/design.md, "Wire"), and the server then still serves a normal call.
/// </summary>
public sealed class BadClientTests(ServeFixture server) : IClassFixture<ServeFixture>, IDisposable
{
    private const string Redeem = "sharerpc.v1.ShareRpc/RedeemShare";
    private const string AppendOps = "sharerpc.v1.ShareRpc/AppendOps";
    private const int MaxMessageBytes = 4 * 1024 * 1024;

    private readonly RawGrpc _raw = new(server.Address);

    public void Dispose() => _raw.Dispose();

    private byte[] GoodRedeem() => RawGrpc.Frame(new RedeemShareRequest { SturdyRef = server.SturdyRef });

    private static void AssertStatus(string expected, RawAnswer answer, string what) =>
        Assert.True(answer.GrpcStatus == expected, $"{what}: expected grpc-status {expected}, got {answer}");

    [Theory]
    [InlineData("application/grpc+json")]
    [InlineData("application/json")]
    public async Task A_content_type_other_than_grpc_proto_is_415(string contentType)
    {
        var answer = await _raw.SendAsync(Redeem, GoodRedeem(), contentType);
        Assert.True(answer.HttpStatus == HttpStatusCode.UnsupportedMediaType, $"{contentType}: expected HTTP 415, got {answer}");
        Assert.True(answer.GrpcStatus == "3", $"{contentType}: expected INVALID_ARGUMENT (a client error, not INTERNAL), got {answer}");
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task A_length_prefix_over_4_MiB_is_RESOURCE_EXHAUSTED()
    {
        // Claims one byte over the limit and sends only the prefix: the server must not wait for (or buffer) the rest.
        var prefix = RawGrpc.Frame([])[..5];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(prefix.AsSpan(1), MaxMessageBytes + 1);
        AssertStatus("8", await _raw.SendAsync(Redeem, prefix), "4 MiB + 1 length prefix");
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task A_compressed_flag_without_grpc_encoding_is_INTERNAL()
    {
        AssertStatus("13", await _raw.SendAsync(Redeem, RawGrpc.Frame(new RedeemShareRequest { SturdyRef = server.SturdyRef }, compressed: true)),
            "compressed flag, no grpc-encoding");
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task An_unknown_grpc_encoding_is_UNIMPLEMENTED_and_lists_gzip()
    {
        var frame = RawGrpc.Frame(new RedeemShareRequest { SturdyRef = server.SturdyRef }, compressed: true);
        var answer = await _raw.SendAsync(Redeem, frame, headers: new Dictionary<string, string> { ["grpc-encoding"] = "snappy" });
        AssertStatus("12", answer, "grpc-encoding snappy");
        Assert.True(answer.AcceptEncoding.Contains("gzip", StringComparison.Ordinal), $"grpc-accept-encoding \"{answer.AcceptEncoding}\" does not list gzip; {answer}");
        await server.AssertStillServesAsync();
    }

    [Theory]
    [InlineData(Redeem)]
    [InlineData(AppendOps)]
    public async Task A_request_that_does_not_parse_is_INVALID_ARGUMENT_naming_the_method(string method)
    {
        // AppendOps carries a good live ref, so the only fault is the message (0xFF 0xFF: a varint cut short).
        var live = await server.RedeemAsync(server.SturdyRef);
        var headers = new Dictionary<string, string> { ["authorization"] = $"Bearer {live.LiveRef}" };
        var answer = await _raw.SendAsync(method, RawGrpc.Frame([0xFF, 0xFF]), headers: headers);
        AssertStatus("3", answer, $"0xFF 0xFF to {method}");
        Assert.True(answer.GrpcMessage.Contains(method, StringComparison.Ordinal), $"the message does not name {method}: {answer}");
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task A_truncated_message_is_INVALID_ARGUMENT()
    {
        AssertStatus("3", await _raw.SendAsync(Redeem, GoodRedeem()[..^2]), "a message 2 bytes short of its length prefix");
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task Two_messages_to_a_unary_method_is_INVALID_ARGUMENT()
    {
        AssertStatus("3", await _raw.SendAsync(Redeem, [.. GoodRedeem(), .. GoodRedeem()]), "two messages to RedeemShare");
        await server.AssertStillServesAsync();
    }

    [Theory]
    [InlineData("123456789S")] // nine digits: the spec allows at most eight
    [InlineData("1x")] // no such unit
    public async Task A_malformed_grpc_timeout_is_INVALID_ARGUMENT(string timeout)
    {
        var answer = await _raw.SendAsync(Redeem, GoodRedeem(), headers: new Dictionary<string, string> { ["grpc-timeout"] = timeout });
        AssertStatus("3", answer, $"grpc-timeout {timeout}");
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task A_grpc_timeout_of_years_is_a_valid_long_deadline()
    {
        var answer = await _raw.SendAsync(Redeem, GoodRedeem(), headers: new Dictionary<string, string> { ["grpc-timeout"] = "99999999H" });
        Assert.True(answer is { HttpStatus: HttpStatusCode.OK, GrpcStatus: "0" }, $"grpc-timeout 99999999H: expected HTTP 200 and grpc-status 0, got {answer}");
        var reply = RedeemShareResponse.Parser.ParseFrom(answer.Body.AsSpan(5));
        Assert.NotEmpty(reply.LiveRef);
        await server.AssertStillServesAsync();
    }

    [Fact]
    public async Task An_Http11_grpc_call_to_the_cleartext_port_is_answered_426_and_not_run()
    {
        // The cleartext port also speaks HTTP/1.1 (browsers: the viewer, gRPC-Web; docs/decisions.md,
        // "HTTP/1.1 and h2c on one cleartext port"), but a plain gRPC call over HTTP/1.1 is not
        // served: 426 Upgrade Required with UNIMPLEMENTED (GrpcRequestChecks), as on the TLS port.
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, server.Port);
        var stream = tcp.GetStream();
        var body = GoodRedeem();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /{Redeem} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"));
        await stream.WriteAsync(body);

        var received = new MemoryStream();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.CopyToAsync(received, cts.Token);
        var text = Encoding.ASCII.GetString(received.ToArray());
        Assert.True(text.StartsWith("HTTP/1.1 426 ", StringComparison.Ordinal), $"expected HTTP/1.1 426, got: {text}");
        Assert.Contains("Content-Length: 0", text, StringComparison.OrdinalIgnoreCase); // no live ref was minted
        Assert.Contains("grpc-status: 12", text, StringComparison.OrdinalIgnoreCase); // UNIMPLEMENTED: the client's choice of transport, not INTERNAL
        Assert.Contains("Upgrade: h2c", text, StringComparison.OrdinalIgnoreCase);
        await server.AssertStillServesAsync();
    }
}
