using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>
/// A logger provider that keeps what the in-process server logs at Error or above — above all the wire's
/// "Handler of … threw." for an exception no handler mapped to a status (the client got UNKNOWN). Injected faults
/// end requests with such exceptions on purpose (<see cref="InjectedPrefix"/>; not kept); any other is a server bug,
/// whatever the checker says about the data.
/// </summary>
public sealed class ServerErrorLog : ILoggerProvider
{
    /// <summary>How the server's fault hooks word the exceptions they end a request with (not errors).</summary>
    public const string InjectedPrefix = "injected fault";

    private readonly ConcurrentQueue<string> _errors = new();

    /// <summary>Each error: "Category: message" and the exception's type, message and innermost stack frame.</summary>
    public IReadOnlyList<string> Errors => [.. _errors];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _errors);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> errors) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel) || exception?.Message.StartsWith(InjectedPrefix, StringComparison.Ordinal) == true)
            {
                return; // an injected Reset / Abort ends its request with an exception on purpose
            }

            var text = $"{category}: {formatter(state, exception)}";
            if (exception is not null)
            {
                text += $" {exception.GetType().FullName}: {exception.Message}";
                var frame = exception.StackTrace?.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
                if (frame is not null)
                {
                    text += " " + frame;
                }
            }

            errors.Enqueue(text);
        }
    }
}
