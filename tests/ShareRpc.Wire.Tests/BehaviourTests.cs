using System.Diagnostics;

namespace ShareRpc.Wire.Tests;

/// <summary>Status, metadata, deadlines, cancellation and limits, end to end over loopback HTTP/2.</summary>
public class BehaviourTests
{
    [Fact]
    public async Task Text_and_binary_metadata_travel_both_ways()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var binary = new byte[] { 0xab, 0xab, 0xab, 0x00, 0xff };
        var headers = new Metadata { { "x-echo-initial", "test_initial_metadata_value" }, { "x-echo-trailing-bin", binary } };
        var call = channel.AsyncUnaryCall(TestServer.Unary, "m", new CallOptions(headers));
        Assert.Equal("m", await call);
        Assert.Equal("test_initial_metadata_value", (await call.ResponseHeadersAsync).GetValue("x-echo-initial"));
        Assert.Equal(binary, call.GetTrailers().GetValueBytes("x-echo-trailing-bin"));
    }

    [Fact]
    public async Task A_chosen_status_and_hostile_message_reach_the_client_intact()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        const string detail = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(TestServer.Unary, "status:2:" + detail));
        Assert.Equal(StatusCode.Unknown, ex.StatusCode);
        Assert.Equal(detail, ex.Status.Detail);
    }

    [Fact]
    public async Task A_handler_exception_is_unknown_and_does_not_leak_its_text()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(TestServer.Unary, "throw"));
        Assert.Equal(StatusCode.Unknown, ex.StatusCode);
        Assert.DoesNotContain("secret", ex.Status.Detail);
        Assert.Equal("ok", await channel.AsyncUnaryCall(TestServer.Unary, "ok"));
    }

    [Fact]
    public async Task Unknown_method_and_unknown_service_are_unimplemented()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var noMethod = new Method<string, string>(MethodType.Unary, "test.Echo", "Nope", TestServer.Utf8, TestServer.Utf8);
        var noService = new Method<string, string>(MethodType.Unary, "test.Nothing", "Nope", TestServer.Utf8, TestServer.Utf8);
        var a = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(noMethod, "x"));
        var b = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(noService, "x"));
        Assert.Equal(StatusCode.Unimplemented, a.StatusCode);
        Assert.Equal(StatusCode.Unimplemented, b.StatusCode);
    }

    [Fact]
    public async Task A_passed_deadline_is_deadline_exceeded_on_both_sides()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var tag = Guid.NewGuid().ToString("n");
        var sw = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await channel.AsyncUnaryCall(TestServer.Sleep, tag, new CallOptions(Deadline: DateTime.UtcNow.AddMilliseconds(300))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
        // The server saw the same deadline (grpc-timeout) and cancelled its handler.
        await WaitUntil(() => TestServer.SleepOutcomes.Contains(tag + ":cancelled"));
    }

    [Fact]
    public async Task A_deadline_already_passed_fails_without_sending()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await channel.AsyncUnaryCall(TestServer.Unary, "x", new CallOptions(Deadline: DateTime.UtcNow.AddSeconds(-1))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task Cancelling_a_call_is_cancelled_and_reaches_the_server_handler()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var tag = Guid.NewGuid().ToString("n");
        using var cts = new CancellationTokenSource();
        var call = channel.AsyncUnaryCall(TestServer.Sleep, tag, new CallOptions(CancellationToken: cts.Token));
        cts.CancelAfter(200);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await call);
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        await WaitUntil(() => TestServer.SleepOutcomes.Contains(tag + ":cancelled"));
    }

    [Fact]
    public async Task Disposing_a_duplex_call_cancels_it()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var call = channel.AsyncDuplexStreamingCall(TestServer.Duplex);
        await call.RequestStream.WriteAsync("a");
        Assert.True(await call.ResponseStream.MoveNext());
        call.Dispose();
        Assert.Equal(StatusCode.Cancelled, call.GetStatus().StatusCode);
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.Equal("b", await channel.AsyncUnaryCall(TestServer.Unary, "b"));
    }

    [Fact]
    public async Task Messages_over_the_limit_are_resource_exhausted_each_way()
    {
        // The server accepts 1 MiB (TestServer); the client sends up to 4 MiB by default.
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel(new GrpcChannelOptions { MaxReceiveMessageBytes = 64 * 1024 });
        var tooBigRequest = new string('r', 1024 * 1024 + 1);
        var up = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(TestServer.Unary, tooBigRequest));
        Assert.Equal(StatusCode.ResourceExhausted, up.StatusCode);

        var down = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(TestServer.Unary, "big:" + (64 * 1024 + 1)));
        Assert.Equal(StatusCode.ResourceExhausted, down.StatusCode);

        using var small = server.CreateChannel(new GrpcChannelOptions { MaxSendMessageBytes = 10 });
        var local = await Assert.ThrowsAsync<RpcException>(async () => await small.AsyncUnaryCall(TestServer.Unary, "more than ten bytes"));
        Assert.Equal(StatusCode.ResourceExhausted, local.StatusCode);

        Assert.Equal(65536, (await channel.AsyncUnaryCall(TestServer.Unary, "big:65536")).Length);
    }

    [Fact]
    public async Task A_connection_refused_is_unavailable()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(TestServer.Unary, "x"));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Fact]
    public async Task Many_pipelined_duplex_messages_arrive_in_order()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        using var call = channel.AsyncDuplexStreamingCall(TestServer.Duplex);
        const int n = 5000;
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < n; i++)
            {
                await call.RequestStream.WriteAsync(i.ToString());
            }

            await call.RequestStream.CompleteAsync();
        });
        var expected = 0;
        while (await call.ResponseStream.MoveNext())
        {
            Assert.Equal("echo:" + expected, call.ResponseStream.Current);
            expected++;
        }

        await writer;
        Assert.Equal(n, expected);
    }

    [Fact]
    public async Task A_server_can_take_what_is_already_buffered_and_answer_with_one_flush()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        using var call = channel.AsyncDuplexStreamingCall(TestServer.BatchedDuplex);
        const int n = 2000;
        for (var i = 0; i < n; i++)
        {
            await call.RequestStream.WriteAsync(i.ToString());
        }

        await call.RequestStream.CompleteAsync();
        var got = new List<string>();
        await foreach (var m in call.ResponseStream.ReadAllAsync())
        {
            got.Add(m);
        }

        // Every message once, in order; and queued messages were gathered (some batch > 1).
        Assert.Equal(Enumerable.Range(0, n).Select(i => "echo:" + i), got.Select(m => m[..m.IndexOf('/')]));
        Assert.Contains(got, m => int.Parse(m[(m.IndexOf('/') + 1)..]) > 1);
    }

    internal static async Task WaitUntil(Func<bool> condition, int timeoutMs = 10_000)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.ElapsedMilliseconds < timeoutMs, "condition not met in time");
            await Task.Delay(20);
        }
    }
}
