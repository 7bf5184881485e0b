using ShareRpc.Client.Outbox;
using ShareRpc.Wire;

namespace ShareRpc.Client;

/// <summary>Client settings; every limit is named with its unit.</summary>
public sealed class ShareRpcClientOptions
{
    /// <summary>The durable outbox file. Required for writers and for creating shares.</summary>
    public string? OutboxPath { get; set; }

    public OutboxOptions Outbox { get; set; } = new();

    /// <summary>Wire settings for every channel (message limits, TLS root, a custom handler).</summary>
    public GrpcChannelOptions Channel { get; set; } = new();

    /// <summary>Server-wide creator token for CreateShare, when the server requires one.</summary>
    public string? CreatorToken { get; set; }

    /// <summary>Batches sent and not yet acked, per share stream.</summary>
    public int MaxInFlightBatches { get; set; } = 8;

    /// <summary>
    /// How long a sender waits for more ops before sealing a partial batch when nothing is in
    /// flight. 0 (default): send at once — while batches are in flight, ops gather by themselves
    /// (measured: 2 ms of linger tripled p50 at 1k ops/s, docs/performance.md).
    /// </summary>
    public int LingerMs { get; set; }

    /// <summary>First reconnect delay; doubles (with jitter) up to <see cref="MaxBackoffMs"/>.</summary>
    public int InitialBackoffMs { get; set; } = 50;

    public int MaxBackoffMs { get; set; } = 5_000;

    /// <summary>Deadline of unary calls (create, redeem, snapshot, delegate, revoke).</summary>
    public int UnaryTimeoutMs { get; set; } = 30_000;

    /// <summary>Refresh a live ref this long before it expires.</summary>
    public int LiveRefRefreshMarginMs { get; set; } = 60_000;

    /// <summary>Failure injection for tests and harnesses; null (off) by default.</summary>
    public ClientFaultHooks? Faults { get; set; }

    /// <summary>Where best-effort operations (AbortAsync) report their errors.</summary>
    public Action<Exception>? ErrorCallback { get; set; }

    internal void Validate()
    {
        if (MaxInFlightBatches <= 0 || LingerMs < 0 || InitialBackoffMs <= 0 || MaxBackoffMs < InitialBackoffMs || UnaryTimeoutMs <= 0 || LiveRefRefreshMarginMs < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ShareRpcClientOptions), "Client limits must be positive (and MaxBackoffMs >= InitialBackoffMs).");
        }

        Outbox.Validate();
    }
}
