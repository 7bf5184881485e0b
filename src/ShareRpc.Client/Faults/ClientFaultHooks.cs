namespace ShareRpc.Client;

/// <summary>
/// Failure-injection hooks in the sender, off unless set in code (never reachable from the wire),
/// as StackExchange.Redis does with its simulated failures. Each hook gets the batch id and may
/// delay, hold or throw.
/// </summary>
public sealed class ClientFaultHooks
{
    /// <summary>Runs after a batch is sealed (durable) and before its bytes are written to the stream.</summary>
    public Func<string, Task>? BeforeSend { get; set; }

    /// <summary>Runs when an ack has arrived and before it is recorded in the outbox.</summary>
    public Func<string, Task>? BeforeRecordAck { get; set; }
}
