namespace ShareRpc.Wire.Tests;

public class CallShapeTests
{
    [Fact]
    public async Task Unary_round_trips_over_h2c()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        var call = channel.AsyncUnaryCall(TestServer.Unary, "hello");
        Assert.Equal("hello", await call);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Server_streaming_yields_every_message_then_ok()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        using var call = channel.AsyncServerStreamingCall(TestServer.ServerStream, "5");
        var got = new List<string>();
        await foreach (var m in call.ResponseStream.ReadAllAsync())
        {
            got.Add(m);
        }

        Assert.Equal(new[] { "m0", "m1", "m2", "m3", "m4" }, got);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Client_streaming_aggregates()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        using var call = channel.AsyncClientStreamingCall(TestServer.ClientStream);
        foreach (var s in new[] { "a", "b", "c" })
        {
            await call.RequestStream.WriteAsync(s);
        }

        await call.RequestStream.CompleteAsync();
        Assert.Equal("abc", await call);
    }

    [Fact]
    public async Task Duplex_ping_pong()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = server.CreateChannel();
        using var call = channel.AsyncDuplexStreamingCall(TestServer.Duplex);
        for (var i = 0; i < 3; i++)
        {
            await call.RequestStream.WriteAsync("p" + i);
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal("echo:p" + i, call.ResponseStream.Current);
        }

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Unary_round_trips_over_tls()
    {
        await using var server = await TestServer.StartAsync(tls: true);
        using var channel = server.CreateChannel();
        Assert.Equal("secure", await channel.AsyncUnaryCall(TestServer.Unary, "secure"));
    }
}
