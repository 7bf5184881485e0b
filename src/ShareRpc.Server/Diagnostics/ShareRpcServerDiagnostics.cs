namespace ShareRpc.Server.Diagnostics;

/// <summary>The names to subscribe to the server's telemetry with (OpenTelemetry's <c>AddMeter</c>, <c>AddSource</c>; <c>dotnet-counters</c>).</summary>
public static class ShareRpcServerDiagnostics
{
    /// <summary>The server's meter: <c>ShareRpc.Server</c>.</summary>
    public const string MeterName = "ShareRpc.Server";

    /// <summary>The server's activity source: <c>ShareRpc.Server</c>.</summary>
    public const string ActivitySourceName = "ShareRpc.Server";
}
