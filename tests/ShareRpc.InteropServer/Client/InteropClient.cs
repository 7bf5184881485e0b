using Google.Protobuf;
using Grpc.Testing;
using ShareRpc.InteropServer.Services;
using ShareRpc.Wire;

namespace ShareRpc.InteropServer.Client;

/// <summary>A failed interop assertion.</summary>
public sealed class InteropCaseFailedException(string message) : Exception(message);

/// <summary>
/// The client side of grpc's portable interop cases (doc/interop-test-descriptions.md) on a
/// ShareRpc.Wire <see cref="GrpcChannel"/>. Each case throws <see cref="InteropCaseFailedException"/>
/// (or an unexpected <see cref="RpcException"/>) when the peer misbehaves.
/// </summary>
public static class InteropClient
{
    public const string InitialMetadataValue = "test_initial_metadata_value";
    public const string TestStatusMessage = "test status message";
    public const string SpecialStatusMessage = "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \U0001F608\t\n";
    private static readonly byte[] TrailingMetadataValue = [0xab, 0xab, 0xab];
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private static readonly Dictionary<string, Func<GrpcChannel, Task>> CaseTable = new()
    {
        ["empty_unary"] = EmptyUnaryAsync,
        ["large_unary"] = LargeUnaryAsync,
        ["client_streaming"] = ClientStreamingAsync,
        ["server_streaming"] = ServerStreamingAsync,
        ["ping_pong"] = PingPongAsync,
        ["empty_stream"] = EmptyStreamAsync,
        ["custom_metadata"] = CustomMetadataAsync,
        ["status_code_and_message"] = StatusCodeAndMessageAsync,
        ["special_status_message"] = SpecialStatusMessageAsync,
        ["unimplemented_method"] = UnimplementedMethodAsync,
        ["unimplemented_service"] = UnimplementedServiceAsync,
        ["cancel_after_begin"] = CancelAfterBeginAsync,
        ["cancel_after_first_response"] = CancelAfterFirstResponseAsync,
        ["timeout_on_sleeping_server"] = TimeoutOnSleepingServerAsync,
    };

    /// <summary>The 14 portable case names, in the order of the interop description.</summary>
    public static IReadOnlyList<string> Cases { get; } =
    [
        "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
        "custom_metadata", "status_code_and_message", "special_status_message", "unimplemented_method",
        "unimplemented_service", "cancel_after_begin", "cancel_after_first_response", "timeout_on_sleeping_server",
    ];

    /// <summary>Runs one case against the server behind <paramref name="channel"/>.</summary>
    public static Task RunAsync(GrpcChannel channel, string testCase)
    {
        ArgumentNullException.ThrowIfNull(channel);
        return CaseTable.TryGetValue(testCase, out var run)
            ? run(channel)
            : throw new ArgumentException($"Unknown test case '{testCase}'.", nameof(testCase));
    }

    private static CallOptions Options(Metadata? headers = null, CancellationToken cancellationToken = default) =>
        new(headers, DateTime.UtcNow + CallTimeout, cancellationToken);

    private static Payload Zeros(int size) => new() { Body = UnsafeByteOperations.UnsafeWrap(new byte[size]) };

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InteropCaseFailedException(what);
        }
    }

    private static void CheckBody(Payload? payload, int size, string what)
    {
        Check(payload is not null, $"{what}: no payload");
        Check(payload!.Body.Length == size, $"{what}: payload body is {payload.Body.Length} bytes, expected {size}");
        foreach (var b in payload.Body.Span)
        {
            Check(b == 0, $"{what}: payload body is not all zeros");
        }
    }

    private static async Task<RpcException> ExpectStatusAsync(Func<Task> call, StatusCode code, string what, string? detail = null)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            Check(e.StatusCode == code, $"{what}: status {e.StatusCode} ('{e.Status.Detail}'), expected {code}");
            if (detail is not null)
            {
                Check(e.Status.Detail == detail, $"{what}: status message '{e.Status.Detail}', expected '{detail}'");
            }

            return e;
        }

        throw new InteropCaseFailedException($"{what}: call succeeded, expected {code}");
    }

    private static StreamingOutputCallRequest OutputRequest(int responseSize, int payloadSize) => new()
    {
        ResponseParameters = { new ResponseParameters { Size = responseSize } },
        Payload = Zeros(payloadSize),
    };

    private static async Task EmptyUnaryAsync(GrpcChannel channel)
    {
        using var call = channel.AsyncUnaryCall(TestServiceMethods.EmptyCall, new Empty(), Options());
        var response = await call.ResponseAsync;
        Check(response is not null, "response is null");
    }

    private static async Task LargeUnaryAsync(GrpcChannel channel)
    {
        var request = new SimpleRequest { ResponseSize = 314159, Payload = Zeros(271828) };
        using var call = channel.AsyncUnaryCall(TestServiceMethods.UnaryCall, request, Options());
        var response = await call.ResponseAsync;
        CheckBody(response.Payload, 314159, "large_unary");
    }

    private static async Task ClientStreamingAsync(GrpcChannel channel)
    {
        using var call = channel.AsyncClientStreamingCall(TestServiceMethods.StreamingInputCall, Options());
        foreach (var size in new[] { 27182, 8, 1828, 45904 })
        {
            await call.RequestStream.WriteAsync(new StreamingInputCallRequest { Payload = Zeros(size) });
        }

        await call.RequestStream.CompleteAsync();
        var response = await call.ResponseAsync;
        Check(response.AggregatedPayloadSize == 74922, $"aggregated_payload_size {response.AggregatedPayloadSize}, expected 74922");
    }

    private static async Task ServerStreamingAsync(GrpcChannel channel)
    {
        int[] sizes = [31415, 9, 2653, 58979];
        var request = new StreamingOutputCallRequest();
        request.ResponseParameters.AddRange(sizes.Select(s => new ResponseParameters { Size = s }));
        using var call = channel.AsyncServerStreamingCall(TestServiceMethods.StreamingOutputCall, request, Options());
        var responses = new List<StreamingOutputCallResponse>();
        await foreach (var response in call.ResponseStream.ReadAllAsync())
        {
            responses.Add(response);
        }

        Check(responses.Count == 4, $"received {responses.Count} responses, expected 4");
        for (var i = 0; i < sizes.Length; i++)
        {
            CheckBody(responses[i].Payload, sizes[i], $"response {i}");
        }

        Check(call.GetStatus().StatusCode == StatusCode.OK, $"status {call.GetStatus()}");
    }

    private static async Task PingPongAsync(GrpcChannel channel)
    {
        int[] requestSizes = [27182, 8, 1828, 45904];
        int[] responseSizes = [31415, 9, 2653, 58979];
        using var call = channel.AsyncDuplexStreamingCall(TestServiceMethods.FullDuplexCall, Options());
        for (var i = 0; i < requestSizes.Length; i++)
        {
            await call.RequestStream.WriteAsync(OutputRequest(responseSizes[i], requestSizes[i]));
            Check(await call.ResponseStream.MoveNext(), $"stream ended after {i} responses, expected 4");
            CheckBody(call.ResponseStream.Current.Payload, responseSizes[i], $"response {i}");
        }

        await call.RequestStream.CompleteAsync();
        Check(!await call.ResponseStream.MoveNext(), "received a response after the 4th");
        Check(call.GetStatus().StatusCode == StatusCode.OK, $"status {call.GetStatus()}");
    }

    private static async Task EmptyStreamAsync(GrpcChannel channel)
    {
        using var call = channel.AsyncDuplexStreamingCall(TestServiceMethods.FullDuplexCall, Options());
        await call.RequestStream.CompleteAsync();
        Check(!await call.ResponseStream.MoveNext(), "received a response, expected none");
        Check(call.GetStatus().StatusCode == StatusCode.OK, $"status {call.GetStatus()}");
    }

    private static Metadata EchoHeaders() => new()
    {
        { InteropServices.EchoInitialKey, InitialMetadataValue },
        { InteropServices.EchoTrailingKey, TrailingMetadataValue },
    };

    private static void CheckEchoedMetadata(Metadata headers, Metadata trailers, string what)
    {
        var initial = headers.Get(InteropServices.EchoInitialKey);
        Check(initial is { IsBinary: false } && initial.Value == InitialMetadataValue,
            $"{what}: initial metadata {headers} lacks {InteropServices.EchoInitialKey}={InitialMetadataValue}");
        var trailing = trailers.Get(InteropServices.EchoTrailingKey);
        Check(trailing is { IsBinary: true } && trailing.ValueBytes.AsSpan().SequenceEqual(TrailingMetadataValue),
            $"{what}: trailing metadata {trailers} lacks {InteropServices.EchoTrailingKey}=0xababab");
    }

    private static async Task CustomMetadataAsync(GrpcChannel channel)
    {
        var request = new SimpleRequest { ResponseSize = 314159, Payload = Zeros(271828) };
        using (var call = channel.AsyncUnaryCall(TestServiceMethods.UnaryCall, request, Options(EchoHeaders())))
        {
            var response = await call.ResponseAsync;
            CheckBody(response.Payload, 314159, "UnaryCall");
            CheckEchoedMetadata(await call.ResponseHeadersAsync, call.GetTrailers(), "UnaryCall");
        }

        using (var call = channel.AsyncDuplexStreamingCall(TestServiceMethods.FullDuplexCall, Options(EchoHeaders())))
        {
            await call.RequestStream.WriteAsync(OutputRequest(314159, 271828));
            await call.RequestStream.CompleteAsync();
            var headers = await call.ResponseHeadersAsync;
            Check(await call.ResponseStream.MoveNext(), "FullDuplexCall: no response");
            CheckBody(call.ResponseStream.Current.Payload, 314159, "FullDuplexCall");
            Check(!await call.ResponseStream.MoveNext(), "FullDuplexCall: more than one response");
            Check(call.GetStatus().StatusCode == StatusCode.OK, $"FullDuplexCall: status {call.GetStatus()}");
            CheckEchoedMetadata(headers, call.GetTrailers(), "FullDuplexCall");
        }
    }

    private static async Task StatusCodeAndMessageAsync(GrpcChannel channel)
    {
        var status = new Grpc.Testing.EchoStatus { Code = 2, Message = TestStatusMessage };
        await ExpectStatusAsync(
            async () =>
            {
                using var call = channel.AsyncUnaryCall(TestServiceMethods.UnaryCall, new SimpleRequest { ResponseStatus = status }, Options());
                await call.ResponseAsync;
            },
            StatusCode.Unknown, "UnaryCall", TestStatusMessage);

        await ExpectStatusAsync(
            async () =>
            {
                using var call = channel.AsyncDuplexStreamingCall(TestServiceMethods.FullDuplexCall, Options());
                await call.RequestStream.WriteAsync(new StreamingOutputCallRequest { ResponseStatus = status });
                await call.RequestStream.CompleteAsync();
                await call.ResponseStream.MoveNext();
            },
            StatusCode.Unknown, "FullDuplexCall", TestStatusMessage);
    }

    private static async Task SpecialStatusMessageAsync(GrpcChannel channel)
    {
        var status = new Grpc.Testing.EchoStatus { Code = 2, Message = SpecialStatusMessage };
        await ExpectStatusAsync(
            async () =>
            {
                using var call = channel.AsyncUnaryCall(TestServiceMethods.UnaryCall, new SimpleRequest { ResponseStatus = status }, Options());
                await call.ResponseAsync;
            },
            StatusCode.Unknown, "UnaryCall", SpecialStatusMessage);
    }

    private static Task UnimplementedMethodAsync(GrpcChannel channel) =>
        ExpectStatusAsync(
            async () =>
            {
                using var call = channel.AsyncUnaryCall(TestServiceMethods.UnimplementedCall, new Empty(), Options());
                await call.ResponseAsync;
            },
            StatusCode.Unimplemented, "TestService/UnimplementedCall");

    private static Task UnimplementedServiceAsync(GrpcChannel channel) =>
        ExpectStatusAsync(
            async () =>
            {
                using var call = channel.AsyncUnaryCall(TestServiceMethods.UnimplementedServiceCall, new Empty(), Options());
                await call.ResponseAsync;
            },
            StatusCode.Unimplemented, "UnimplementedService/UnimplementedCall");

    private static async Task CancelAfterBeginAsync(GrpcChannel channel)
    {
        using var cts = new CancellationTokenSource();
        using var call = channel.AsyncClientStreamingCall(TestServiceMethods.StreamingInputCall, Options(cancellationToken: cts.Token));
        await cts.CancelAsync();
        await ExpectStatusAsync(() => call.ResponseAsync, StatusCode.Cancelled, "StreamingInputCall");
        Check(call.GetStatus().StatusCode == StatusCode.Cancelled, $"GetStatus() is {call.GetStatus()}, expected Cancelled");
    }

    private static async Task CancelAfterFirstResponseAsync(GrpcChannel channel)
    {
        using var cts = new CancellationTokenSource();
        using var call = channel.AsyncDuplexStreamingCall(TestServiceMethods.FullDuplexCall, Options(cancellationToken: cts.Token));
        await call.RequestStream.WriteAsync(OutputRequest(31415, 27182));
        Check(await call.ResponseStream.MoveNext(), "no first response");
        CheckBody(call.ResponseStream.Current.Payload, 31415, "first response");
        await cts.CancelAsync();
        await ExpectStatusAsync(() => call.ResponseStream.MoveNext(), StatusCode.Cancelled, "FullDuplexCall after cancel");
        Check(call.GetStatus().StatusCode == StatusCode.Cancelled, $"GetStatus() is {call.GetStatus()}, expected Cancelled");
    }

    private static async Task TimeoutOnSleepingServerAsync(GrpcChannel channel)
    {
        using var call = channel.AsyncDuplexStreamingCall(
            TestServiceMethods.FullDuplexCall, new CallOptions(Deadline: DateTime.UtcNow.AddMilliseconds(1)));
        try
        {
            await call.RequestStream.WriteAsync(new StreamingOutputCallRequest { Payload = Zeros(27182) });
        }
        catch (RpcException e)
        {
            // The deadline may already have passed while writing: that must be the reason too.
            Check(e.StatusCode == StatusCode.DeadlineExceeded, $"write failed with {e.StatusCode}, expected DeadlineExceeded");
        }

        await ExpectStatusAsync(() => call.ResponseStream.MoveNext(), StatusCode.DeadlineExceeded, "FullDuplexCall");
        Check(call.GetStatus().StatusCode == StatusCode.DeadlineExceeded, $"GetStatus() is {call.GetStatus()}, expected DeadlineExceeded");
    }
}
