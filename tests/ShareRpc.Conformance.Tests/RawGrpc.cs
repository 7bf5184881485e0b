using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;

namespace ShareRpc.Conformance.Tests;

/// <summary>What a raw HTTP/2 exchange answered: the HTTP status, and the gRPC status wherever it came (headers or trailers).</summary>
public sealed record RawAnswer(HttpStatusCode HttpStatus, string? GrpcStatus, string GrpcMessage, string AcceptEncoding, byte[] Body)
{
    public override string ToString() => $"HTTP {(int)HttpStatus}, grpc-status {GrpcStatus ?? "(none)"}, grpc-message \"{GrpcMessage}\", {Body.Length} body bytes";
}

/// <summary>
/// A hand-made gRPC peer: HTTP/2 requests (SocketsHttpHandler, version exact, no gRPC library) with
/// bodies built byte by byte, so a test can send what a well-behaved client never would.
/// </summary>
public sealed class RawGrpc(string address) : IDisposable
{
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler());

    /// <summary>A gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload.</summary>
    public static byte[] Frame(byte[] payload, bool compressed = false)
    {
        var frame = new byte[5 + payload.Length];
        frame[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    public static byte[] Frame(IMessage message, bool compressed = false) => Frame(message.ToByteArray(), compressed);

    /// <summary>POSTs <paramref name="body"/> to /<paramref name="method"/> and reads the whole answer.</summary>
    public async Task<RawAnswer> SendAsync(string method, byte[] body, string contentType = "application/grpc", IReadOnlyDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{address}/{method}")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        request.Headers.TryAddWithoutValidation("te", "trailers");
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
            request.Headers.TryAddWithoutValidation(name, value);

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await _http.SendAsync(request, cts.Token);
        var bytes = await response.Content.ReadAsByteArrayAsync(cts.Token); // trailers arrive after the body
        string? Get(string name) =>
            response.Headers.TryGetValues(name, out var h) ? h.First()
            : response.TrailingHeaders.TryGetValues(name, out var t) ? t.First()
            : null;
        return new RawAnswer(response.StatusCode, Get("grpc-status"), Uri.UnescapeDataString(Get("grpc-message") ?? ""),
            Get("grpc-accept-encoding") ?? "", bytes);
    }

    public void Dispose() => _http.Dispose();
}
