using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ShareRpc.Client.Outbox;

namespace ShareRpc.Client;

/// <summary>Client settings; every limit is named with its unit, every duration is a <see cref="TimeSpan"/>.</summary>
public sealed class ShareRpcClientOptions
{
    /// <summary>The durable outbox file. Required for writers and for creating shares.</summary>
    public string? OutboxPath { get; set; }

    /// <summary>
    /// The engine that keeps the outbox file: <see cref="OutboxEngine.Sqlite"/> (default), or LiteDB from
    /// the ShareRpc.Client.LiteDb package (docs/client.md, "Outbox stores", compares their guarantees).
    /// </summary>
    public OutboxEngine OutboxEngine { get; set; } = OutboxEngine.Sqlite;

    /// <summary>How the outbox is written and batches are cut.</summary>
    public OutboxOptions Outbox { get; set; } = new();

    /// <summary>How servers are reached: message limits, HTTP/2 tuning, TLS root, your own handlers.</summary>
    public ShareRpcChannelOptions Channel { get; set; } = new();

    /// <summary>Server-wide creator token for CreateShare, when the server requires one.</summary>
    public string? CreatorToken { get; set; }

    /// <summary>The server's limits on one op, checked before an op is made durable (defaults: the server's).</summary>
    public ShareRpcClientLimits Limits { get; set; } = new();

    /// <summary>
    /// How long a subscription keeps reconnecting without reaching the server before it gives up and
    /// throws the last error. <see cref="Timeout.InfiniteTimeSpan"/> (default): it never gives up.
    /// </summary>
    public TimeSpan SubscribeGiveUpAfter { get; set; } = Timeout.InfiniteTimeSpan;

    /// <summary>Batches sent and not yet acked, per share stream (count).</summary>
    public int MaxInFlightBatches { get; set; } = 8;

    /// <summary>
    /// How long a sender waits for more ops before sealing a batch while batches are in flight (as
    /// Kafka's linger.ms), so a sequential producer's ops share a batch. With nothing in flight it
    /// sends at once, and the wait ends early when the last batch in flight is acked or a full batch
    /// is waiting (docs/client.md, "Sender"). Zero: seal at once.
    /// </summary>
    public TimeSpan Linger { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How long a sender keeps its AppendOps stream open once everything is acked and nothing waits,
    /// in case more ops come (docs/client.md, "Sender"): a new stream costs a round trip and the
    /// server's per-stream set-up. Zero closes it at once. The server ends streams idle for longer
    /// than its own RequestIdleTimeout (2 min by default).
    /// </summary>
    public TimeSpan IdleStreamTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>First reconnect delay; doubles (with jitter) up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest reconnect delay.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Deadline of unary calls (create, redeem, snapshot, delegate, revoke).</summary>
    public TimeSpan UnaryTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Refresh a live ref this long before it expires.</summary>
    public TimeSpan LiveRefRefreshMargin { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The clock for deadlines, backoff and live-ref expiry (tests inject a fake one).</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Failure injection for tests and harnesses; null (off) by default.</summary>
    public ClientFaultHooks? Faults { get; set; }

    /// <summary>Where best-effort operations (AbortAsync) report their errors.</summary>
    public Action<Exception>? ErrorCallback { get; set; }

    /// <summary>
    /// Where the client's log events go (category <c>ShareRpc.Client</c>, event ids 2000–2099:
    /// reconnects, redeems, sender stops, poison ops, replays, compaction). Nothing by default;
    /// <c>AddShareRpcClient</c> takes the host's. No event holds a secret or a live ref.
    /// </summary>
    public ILoggerFactory LoggerFactory { get; set; } = NullLoggerFactory.Instance;

    /// <summary>
    /// This client's name in the <c>sharerpc.instance</c> tag of its metrics. Default: the outbox
    /// file's full path (one sending process per file), else the process id.
    /// </summary>
    public string? InstanceName { get; set; }

    /// <summary>Every broken setting, named with its value; empty when the options are usable.</summary>
    internal List<string> Problems()
    {
        var problems = new List<string>();
        if (MaxInFlightBatches <= 0) problems.Add($"MaxInFlightBatches must be > 0 (was {MaxInFlightBatches}).");
        if (Linger < TimeSpan.Zero) problems.Add($"Linger must be >= 0 (was {Linger}).");
        if (IdleStreamTimeout < TimeSpan.Zero) problems.Add($"IdleStreamTimeout must be >= 0 (was {IdleStreamTimeout}).");
        if (InitialBackoff <= TimeSpan.Zero) problems.Add($"InitialBackoff must be > 0 (was {InitialBackoff}).");
        if (MaxBackoff < InitialBackoff) problems.Add($"MaxBackoff must be >= InitialBackoff (was {MaxBackoff} < {InitialBackoff}).");
        if (UnaryTimeout <= TimeSpan.Zero) problems.Add($"UnaryTimeout must be > 0 (was {UnaryTimeout}).");
        if (LiveRefRefreshMargin < TimeSpan.Zero) problems.Add($"LiveRefRefreshMargin must be >= 0 (was {LiveRefRefreshMargin}).");
        if (SubscribeGiveUpAfter <= TimeSpan.Zero && SubscribeGiveUpAfter != Timeout.InfiniteTimeSpan) problems.Add($"SubscribeGiveUpAfter must be > 0 or infinite (was {SubscribeGiveUpAfter}).");
        if (TimeProvider is null) problems.Add("TimeProvider must be set.");
        if (LoggerFactory is null) problems.Add("LoggerFactory must be set (NullLoggerFactory.Instance for none).");
        if (Limits is null) problems.Add("Limits must be set.");
        else problems.AddRange(Limits.Problems());
        if (OutboxEngine is null) problems.Add("OutboxEngine must be set (OutboxEngine.Sqlite is the default).");
        if (Outbox is null) problems.Add("Outbox must be set.");
        else problems.AddRange(Outbox.Problems());
        if (Outbox is not null && Limits is not null && Outbox.MaxBatchOps > Limits.MaxOpsPerBatch)
            problems.Add($"Outbox.MaxBatchOps must be <= Limits.MaxOpsPerBatch (was {Outbox.MaxBatchOps} > {Limits.MaxOpsPerBatch}).");
        if (Channel is null) problems.Add("Channel must be set.");
        else problems.AddRange(Channel.Problems());
        return problems;
    }

    internal void Validate()
    {
        var problems = Problems();
        if (problems.Count > 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ShareRpcClientOptions), "ShareRpcClientOptions: " + string.Join(" ", problems));
        }
    }
}
