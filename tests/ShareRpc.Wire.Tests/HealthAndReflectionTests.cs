using System.Diagnostics;
using ShareRpc.Wire.Health.V1;
using ShareRpc.Wire.Reflection.V1;
using ServingStatus = ShareRpc.Wire.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace ShareRpc.Wire.Tests;

public class HealthAndReflectionTests
{
    [Fact]
    public async Task Check_reports_status_and_unknown_services_are_not_found()
    {
        var health = new HealthStatusRegistry();
        health.SetStatus("", ServingStatus.Serving);
        await using var server = await TestServer.StartAsync(health: health);
        using var channel = server.CreateChannel();
        var ok = await channel.AsyncUnaryCall(GrpcHealth.Check, new HealthCheckRequest());
        Assert.Equal(ServingStatus.Serving, ok.Status);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await channel.AsyncUnaryCall(GrpcHealth.Check, new HealthCheckRequest { Service = "nope" }));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task Watch_sends_the_current_status_then_each_change()
    {
        var health = new HealthStatusRegistry();
        await using var server = await TestServer.StartAsync(health: health);
        using var channel = server.CreateChannel();
        using var call = channel.AsyncServerStreamingCall(GrpcHealth.Watch, new HealthCheckRequest { Service = "svc" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.ServiceUnknown, call.ResponseStream.Current.Status);
        health.SetStatus("svc", ServingStatus.Serving);
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, call.ResponseStream.Current.Status);
        health.SetAllNotServing();
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, call.ResponseStream.Current.Status);
    }

    [Fact]
    public async Task Reflection_lists_services_and_finds_files_by_symbol()
    {
        await using var server = await TestServer.StartAsync(health: new HealthStatusRegistry());
        using var channel = server.CreateChannel();
        using var call = channel.AsyncDuplexStreamingCall(GrpcReflection.Info);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "*" });
        Assert.True(await call.ResponseStream.MoveNext());
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToArray();
        Assert.Contains(GrpcHealth.ServiceName, names);
        Assert.Contains(GrpcReflection.ServiceName, names);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "grpc.health.v1.Health.Check" });
        Assert.True(await call.ResponseStream.MoveNext());
        var file = Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto[0]);
        Assert.Equal("grpc/health/v1/health.proto", file.Name);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "no.Such" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal((int)StatusCode.NotFound, call.ResponseStream.Current.ErrorResponse.ErrorCode);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task Buf_curl_calls_through_reflection_without_protos()
    {
        var buf = Path.Combine(RepoRoot(), "tests", "interop", "node", "node_modules", ".bin", "buf");
        Assert.True(File.Exists(buf), $"buf is missing at {buf}: run ./test.sh (tests/interop/setup.sh installs it)");
        var health = new HealthStatusRegistry();
        health.SetStatus("", ServingStatus.Serving);
        await using var server = await TestServer.StartAsync(health: health);
        var psi = new ProcessStartInfo(buf)
        {
            ArgumentList = { "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", "{}", new Uri(server.Address, GrpcHealth.Check.FullName).ToString() },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        Assert.True(p.ExitCode == 0, await stderr);
        Assert.Contains("\"status\": \"SERVING\"", await stdout);
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ShareRpc.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("ShareRpc.sln not found above the test binaries.");
    }
}
