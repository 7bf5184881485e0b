using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ShareRpc.Server.Diagnostics;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// The logging and telemetry of <c>sharerpc serve</c> (docs/operate.md, "Wiring"):
/// console lines as text (one line each) or JSON (<c>--log-format json</c>, for machines)
/// at <c>--log-level</c>; with <c>--otlp-endpoint</c>, the server's logs (ShareRpc at Information),
/// metrics (meter ShareRpc.Server) and traces (ShareRpc.Server and ASP.NET Core's request spans,
/// which carry the client's traceparent) exported by OTLP. Nothing is exported without it.
/// </summary>
internal static class ServeTelemetry
{
    public static void Configure(WebApplicationBuilder builder, string logFormat, LogLevel level, Uri? otlpEndpoint, string otlpProtocol)
    {
        if (logFormat == "json")
        {
            builder.Logging.AddJsonConsole(o => o.TimestampFormat = "O");
        }
        else
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        }

        builder.Logging.SetMinimumLevel(level);
        if (otlpEndpoint is null)
        {
            return;
        }

        var protocol = otlpProtocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        builder.Logging.AddFilter<OpenTelemetryLoggerProvider>("ShareRpc", LogLevel.Information);
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("sharerpc"))
            .WithTracing(t => t
                .AddSource(ShareRpcServerDiagnostics.ActivitySourceName)
                .AddSource("Microsoft.AspNetCore") // the request span: a child of the caller's (traceparent), parent of sharerpc.apply
                .AddOtlpExporter(o => Exporter(o, otlpEndpoint, protocol, "v1/traces")))
            .WithMetrics(m => m
                .AddMeter(ShareRpcServerDiagnostics.MeterName)
                .AddOtlpExporter(o => Exporter(o, otlpEndpoint, protocol, "v1/metrics")))
            .WithLogging(l => l.AddOtlpExporter(o => Exporter(o, otlpEndpoint, protocol, "v1/logs")));
    }

    /// <summary>An <c>--otlp-endpoint</c> option: an absolute http(s) URL (System.CommandLine has no Uri parser of its own).</summary>
    internal static Option<Uri?> EndpointOption(string description) => new("--otlp-endpoint")
    {
        Description = description,
        CustomParser = r =>
        {
            var text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)) return uri;
            r.AddError($"--otlp-endpoint must be an http:// or https:// URL, not '{text}'.");
            return null;
        },
    };

    /// <summary>gRPC takes the collector's address as given; OTLP/HTTP set in code needs each signal's path (/v1/traces …).</summary>
    internal static void Exporter(OtlpExporterOptions o, Uri endpoint, OtlpExportProtocol protocol, string signalPath)
    {
        o.Protocol = protocol;
        o.Endpoint = protocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(endpoint.ToString().TrimEnd('/') + "/" + signalPath)
            : endpoint;
    }
}
