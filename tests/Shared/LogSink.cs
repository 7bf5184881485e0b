using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ShareRpc.TestSupport;

/// <summary>One log event as a logger received it: the rendered message and every structured value.</summary>
public sealed record LoggedEvent(string Category, LogLevel Level, EventId EventId, string Message, IReadOnlyList<KeyValuePair<string, object?>> State, Exception? Exception)
{
    /// <summary>Everything the event would put in a log line or a structured sink, for "never logged" checks.</summary>
    public string Everything => string.Join("\n", [Message, .. State.Select(kv => $"{kv.Key}={kv.Value}"), Exception?.ToString() ?? ""]);
}

/// <summary>
/// A logger provider that keeps every event at every level (a test logger sink): tests assert event
/// ids, levels and values, and that no secret appears. Use <see cref="Factory"/> where the code
/// under test takes an ILoggerFactory, or add it as a provider in a host.
/// </summary>
public sealed class LogSink : ILoggerProvider
{
    private readonly ConcurrentQueue<LoggedEvent> _entries = new();

    public LogSink() => Factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(this));

    public ILoggerFactory Factory { get; }

    public IReadOnlyList<LoggedEvent> Entries => [.. _entries];

    /// <summary>The events with id <paramref name="id"/>.</summary>
    public IReadOnlyList<LoggedEvent> WithId(int id) => [.. _entries.Where(e => e.EventId.Id == id)];

    /// <summary>Waits until an event matches (events are written from background loops); throws with what was logged if none does in time.</summary>
    public async Task<LoggedEvent> WaitForAsync(Func<LoggedEvent, bool> match, TimeSpan? timeout = null)
    {
        LoggedEvent? found = null;
        await Wait.UntilAsync(() => (found = _entries.FirstOrDefault(match)) is not null, timeout ?? TimeSpan.FromSeconds(30),
            () => "no matching log event; logged:\n" + string.Join("\n", _entries.Select(e => $"{e.EventId.Id} {e.EventId.Name} {e.Level}: {e.Message}")));
        return found!;
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogSink sink, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state as IReadOnlyList<KeyValuePair<string, object?>> ?? [];
            sink._entries.Enqueue(new LoggedEvent(category, logLevel, eventId, formatter(state, exception), [.. values], exception));
        }
    }
}
