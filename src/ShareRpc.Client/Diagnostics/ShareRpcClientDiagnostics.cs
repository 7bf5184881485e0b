namespace ShareRpc.Client.Diagnostics;

/// <summary>
/// The names to subscribe to the client's telemetry with (OpenTelemetry's <c>AddMeter</c> and
/// <c>AddSource</c>; <c>dotnet-counters monitor --counters ShareRpc.Client</c>). Logs go to
/// <see cref="ShareRpcClientOptions.LoggerFactory"/> under the category <see cref="LoggerCategory"/>.
/// </summary>
public static class ShareRpcClientDiagnostics
{
    /// <summary>The client's meter: <c>ShareRpc.Client</c>.</summary>
    public const string MeterName = "ShareRpc.Client";

    /// <summary>The client's activity source: <c>ShareRpc.Client</c> (a <c>sharerpc.enqueue</c> span per enqueue, a <c>sharerpc.append_ops</c> span per stream).</summary>
    public const string ActivitySourceName = "ShareRpc.Client";

    /// <summary>The category of the client's log events (ids 2000–2099).</summary>
    public const string LoggerCategory = "ShareRpc.Client";
}
