using System.CommandLine;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ShareRpc.Client;
using ShareRpc.Client.Diagnostics;

namespace ShareRpc.Cli.Commands;

/// <summary>
/// The logs and telemetry of the client commands (create, append, tail; docs/operate.md, "Wiring"):
/// the SDK's events (ClientLog, 2000–2099) one line each on stderr from <c>--log-level</c> up —
/// none by default, so stdout and the one-line errors stay as scripts read them — and with
/// <c>--otlp-endpoint</c> the SDK's logs, metrics (ShareRpc.Client) and spans (sharerpc.enqueue,
/// whose context each op carries to the server) exported by OTLP, flushed when the command ends.
/// </summary>
internal sealed class ClientTelemetry : IDisposable
{
    private readonly TracerProvider? _tracing;
    private readonly MeterProvider? _metrics;

    private ClientTelemetry(ILoggerFactory loggers, TracerProvider? tracing, MeterProvider? metrics)
    {
        Loggers = loggers;
        _tracing = tracing;
        _metrics = metrics;
    }

    public ILoggerFactory Loggers { get; }

    /// <summary>The options every client command takes: --log-level, --otlp-endpoint, --otlp-protocol.</summary>
    public sealed record Options(Option<LogLevel> Level, Option<Uri?> Otlp, Option<string> Protocol)
    {
        /// <summary>Adds the options to <paramref name="command"/>.</summary>
        public static Options AddTo(Command command)
        {
            var options = new Options(
                new Option<LogLevel>("--log-level") { Description = "The SDK's log events (reconnects, replays, poison ops, a stopped sender) on stderr from this level up (docs/operate.md). Default: none.", DefaultValueFactory = _ => LogLevel.None },
                ServeTelemetry.EndpointOption("Export the SDK's logs, metrics and sharerpc.enqueue spans by OTLP to this collector. Nothing is exported without it."),
                new Option<string>("--otlp-protocol") { Description = "OTLP over grpc (port 4317) or http/protobuf (port 4318).", DefaultValueFactory = _ => "grpc" });
            options.Protocol.AcceptOnlyFromAmong("grpc", "http/protobuf");
            command.Options.Add(options.Level);
            command.Options.Add(options.Otlp);
            command.Options.Add(options.Protocol);
            return options;
        }
    }

    /// <summary>Starts what <paramref name="options"/> ask for; the caller sets <see cref="ShareRpcClientOptions.LoggerFactory"/> to <see cref="Loggers"/>.</summary>
    public static ClientTelemetry Start(ParseResult parse, Options options)
    {
        var level = parse.GetValue(options.Level);
        var endpoint = parse.GetValue(options.Otlp);
        var protocol = parse.GetValue(options.Protocol) == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        var loggers = LoggerFactory.Create(b =>
        {
            b.AddSimpleConsole(o => o.SingleLine = true);
            b.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace); // stdout is the command's output
            b.AddFilter<ConsoleLoggerProvider>(null, level);
            if (endpoint is null) return;
            b.AddFilter<OpenTelemetryLoggerProvider>("ShareRpc", LogLevel.Information);
            b.AddOpenTelemetry(o =>
            {
                o.SetResourceBuilder(Resource());
                o.AddOtlpExporter(e => ServeTelemetry.Exporter(e, endpoint, protocol, "v1/logs"));
            });
        });
        if (endpoint is null) return new ClientTelemetry(loggers, null, null);
        var tracing = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(Resource())
            .AddSource(ShareRpcClientDiagnostics.ActivitySourceName)
            .AddOtlpExporter(e => ServeTelemetry.Exporter(e, endpoint, protocol, "v1/traces"))
            .Build();
        var metrics = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(Resource())
            .AddMeter(ShareRpcClientDiagnostics.MeterName)
            .AddOtlpExporter(e => ServeTelemetry.Exporter(e, endpoint, protocol, "v1/metrics"))
            .Build();
        return new ClientTelemetry(loggers, tracing, metrics);
    }

    /// <summary>Flushes what is buffered (a short command ends before the exporters' next interval).</summary>
    public void Dispose()
    {
        _tracing?.ForceFlush(5000);
        _metrics?.ForceFlush(5000);
        _tracing?.Dispose();
        _metrics?.Dispose();
        Loggers.Dispose(); // flushes the console and the OTLP log exporter
    }

    private static ResourceBuilder Resource() => ResourceBuilder.CreateDefault().AddService("sharerpc-client");
}
