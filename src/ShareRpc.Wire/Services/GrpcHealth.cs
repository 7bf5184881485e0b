using ShareRpc.Wire.Health.V1;

namespace ShareRpc.Wire;

/// <summary>
/// Serving status per service name ("" is the whole server), for grpc.health.v1.Health
/// (grpc/grpc doc/health-checking.md).
/// </summary>
public sealed class HealthStatusRegistry
{
    private readonly object _lock = new();
    private readonly Dictionary<string, HealthCheckResponse.Types.ServingStatus> _statuses = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void SetStatus(string service, HealthCheckResponse.Types.ServingStatus status)
    {
        ArgumentNullException.ThrowIfNull(service);
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (_statuses.TryGetValue(service, out var old) && old == status)
            {
                return;
            }

            _statuses[service] = status;
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    /// <summary>Marks every known service NOT_SERVING (on shutdown, so balancers drain first).</summary>
    public void SetAllNotServing()
    {
        string[] names;
        lock (_lock)
        {
            names = _statuses.Keys.ToArray();
        }

        foreach (var n in names)
        {
            SetStatus(n, HealthCheckResponse.Types.ServingStatus.NotServing);
        }
    }

    public HealthCheckResponse.Types.ServingStatus? GetStatus(string service)
    {
        lock (_lock)
        {
            return _statuses.TryGetValue(service, out var s) ? s : null;
        }
    }

    internal (HealthCheckResponse.Types.ServingStatus? Status, Task Changed) Snapshot(string service)
    {
        lock (_lock)
        {
            return (_statuses.TryGetValue(service, out var s) ? s : null, _changed.Task);
        }
    }
}

/// <summary>grpc.health.v1.Health on this wire layer.</summary>
public static class GrpcHealth
{
    public const string ServiceName = "grpc.health.v1.Health";

    public static readonly Method<HealthCheckRequest, HealthCheckResponse> Check = new(
        MethodType.Unary, ServiceName, "Check", Marshallers.Protobuf(HealthCheckRequest.Parser), Marshallers.Protobuf(HealthCheckResponse.Parser));

    public static readonly Method<HealthCheckRequest, HealthCheckResponse> Watch = new(
        MethodType.ServerStreaming, ServiceName, "Watch", Marshallers.Protobuf(HealthCheckRequest.Parser), Marshallers.Protobuf(HealthCheckResponse.Parser));

    public static ServerServiceDefinition CreateService(HealthStatusRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return ServerServiceDefinition.CreateBuilder()
            .AddMethod(Check, (request, _) =>
            {
                // doc/health-checking.md: an unknown service is NOT_FOUND for Check.
                var status = registry.GetStatus(request.Service)
                    ?? throw new RpcException(new Status(StatusCode.NotFound, $"Unknown service '{request.Service}'."));
                return Task.FromResult(new HealthCheckResponse { Status = status });
            })
            .AddMethod(Watch, async (request, stream, context) =>
            {
                // Sends the current status (SERVICE_UNKNOWN for an unknown name), then every change.
                HealthCheckResponse.Types.ServingStatus? last = null;
                while (!context.CancellationToken.IsCancellationRequested)
                {
                    var (status, changed) = registry.Snapshot(request.Service);
                    var now = status ?? HealthCheckResponse.Types.ServingStatus.ServiceUnknown;
                    if (now != last)
                    {
                        await stream.WriteAsync(new HealthCheckResponse { Status = now });
                        last = now;
                    }

                    try
                    {
                        await changed.WaitAsync(context.CancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            })
            .Build();
    }
}
