using System.Buffers;
using Microsoft.AspNetCore.Hosting;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShareRpc.Wire.Tests;

/// <summary>
/// An in-process Kestrel host on 127.0.0.1 (port chosen by the OS) serving a small echo service
/// whose messages are UTF-8 strings, so wire tests need no generated code.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    public static readonly Marshaller<string> Utf8 = new(
        static (s, w) => w.Write(Encoding.UTF8.GetBytes(s)),
        static seq => Encoding.UTF8.GetString(seq.ToArray()),
        static s => Encoding.UTF8.GetByteCount(s));

    /// <summary>A marshaller whose parse fails on "bad", like a protobuf parser on garbage.</summary>
    public static readonly Marshaller<string> Strict = new(
        static (s, w) => w.Write(Encoding.UTF8.GetBytes(s)),
        static seq => Encoding.UTF8.GetString(seq.ToArray()) is var s && s == "bad" ? throw new FormatException("not a message") : s,
        static s => Encoding.UTF8.GetByteCount(s));

    public static readonly Method<string, string> Unary = new(MethodType.Unary, "test.Echo", "Unary", Utf8, Utf8);
    public static readonly Method<string, string> StrictUnary = new(MethodType.Unary, "test.Echo", "StrictUnary", Strict, Utf8);
    public static readonly Method<string, string> ServerStream = new(MethodType.ServerStreaming, "test.Echo", "ServerStream", Utf8, Utf8);
    public static readonly Method<string, string> ClientStream = new(MethodType.ClientStreaming, "test.Echo", "ClientStream", Utf8, Utf8);
    public static readonly Method<string, string> Duplex = new(MethodType.DuplexStreaming, "test.Echo", "Duplex", Utf8, Utf8);
    public static readonly Method<string, string> BatchedDuplex = new(MethodType.DuplexStreaming, "test.Echo", "BatchedDuplex", Utf8, Utf8);
    public static readonly Method<string, string> Sleep = new(MethodType.Unary, "test.Echo", "Sleep", Utf8, Utf8);

    private readonly WebApplication _app;

    private TestServer(WebApplication app, Uri address, X509Certificate2? cert)
    {
        _app = app;
        Address = address;
        Certificate = cert;
    }

    public Uri Address { get; }

    public X509Certificate2? Certificate { get; }

    /// <summary>Calls the Sleep handler saw end, with the reason.</summary>
    public static System.Collections.Concurrent.ConcurrentQueue<string> SleepOutcomes { get; } = new();

    public static async Task<TestServer> StartAsync(bool tls = false, Action<GrpcServerOptions>? configure = null, HealthStatusRegistry? health = null)
    {
        var cert = tls ? DevCertificates.CreateSelfSigned() : null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpcWire(o =>
        {
            o.MaxReceiveMessageBytes = 1024 * 1024;
            configure?.Invoke(o);
        });
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(IPAddress.Loopback, 0, cert));
        var app = builder.Build();
        app.MapGrpcService(CreateService());
        if (health is not null)
        {
            app.MapGrpcService(GrpcHealth.CreateService(health));
            app.MapGrpcService(GrpcReflection.CreateService(Array.Empty<Google.Protobuf.Reflection.FileDescriptor>()));
        }
        await app.StartAsync();
        var address = app.GetListeningAddresses().Single();
        if (tls)
        {
            address = new UriBuilder(address) { Host = "localhost" }.Uri;
        }

        return new TestServer(app, address, cert);
    }

    public GrpcChannel CreateChannel(GrpcChannelOptions? options = null)
    {
        options ??= new GrpcChannelOptions();
        options.TrustedRootCertificate ??= Certificate;
        return GrpcChannel.ForAddress(Address, options);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static ServerServiceDefinition CreateService() => ServerServiceDefinition.CreateBuilder()
        .AddMethod(Unary, async (request, context) =>
        {
            await Task.Yield();
            if (context.RequestHeaders.GetValue("x-echo-initial") is { } initial)
            {
                await context.WriteResponseHeadersAsync(new Metadata { { "x-echo-initial", initial } });
            }

            if (context.RequestHeaders.GetValueBytes("x-echo-trailing-bin") is { } trailing)
            {
                context.ResponseTrailers.Add("x-echo-trailing-bin", trailing);
            }

            if (request.StartsWith("status:", StringComparison.Ordinal))
            {
                // "status:CODE:detail"
                var parts = request.Split(':', 3);
                throw new RpcException(new Status((StatusCode)int.Parse(parts[1]), parts[2]));
            }

            if (request == "throw")
            {
                throw new InvalidOperationException("secret internals");
            }

            if (request.StartsWith("big:", StringComparison.Ordinal))
            {
                return new string('x', int.Parse(request[4..]));
            }

            return request;
        })
        .AddMethod(StrictUnary, (request, _) => Task.FromResult(request))
        .AddMethod(Sleep, async (request, context) =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                SleepOutcomes.Enqueue(request + ":cancelled");
                throw;
            }

            return request;
        })
        .AddMethod(ServerStream, async (request, stream, context) =>
        {
            var n = int.Parse(request);
            for (var i = 0; i < n; i++)
            {
                await stream.WriteAsync("m" + i);
            }
        })
        .AddMethod(ClientStream, async (requests, context) =>
        {
            var sb = new StringBuilder();
            await foreach (var m in requests.ReadAllAsync())
            {
                sb.Append(m);
            }

            return sb.ToString();
        })
        .AddMethod(Duplex, async (requests, responses, context) =>
        {
            await foreach (var m in requests.ReadAllAsync())
            {
                await responses.WriteAsync("echo:" + m);
            }
        })
        .AddMethod(BatchedDuplex, async (requests, responses, context) =>
        {
            // Answers with "echo:<message>/<messages in this read batch>", one flush per batch.
            var reader = (IBufferedStreamReader<string>)requests;
            while (await reader.MoveNext())
            {
                var batch = new List<string> { reader.Current };
                while (reader.TryMoveNextBuffered())
                {
                    batch.Add(reader.Current);
                }

                foreach (var m in batch)
                {
                    responses.WriteBuffered("echo:" + m + "/" + batch.Count);
                }

                await responses.FlushAsync();
            }
        })
        .Build();
}
