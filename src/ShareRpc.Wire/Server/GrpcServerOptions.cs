namespace ShareRpc.Wire;

/// <summary>Server-wide wire limits and behaviour.</summary>
public sealed class GrpcServerOptions
{
    /// <summary>Largest request message accepted; larger → RESOURCE_EXHAUSTED. gRPC's default, 4 MiB.</summary>
    public int MaxReceiveMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Largest response message sent; larger → RESOURCE_EXHAUSTED. 4 MiB.</summary>
    public int MaxSendMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Put an unhandled exception's text into grpc-message. Off: it may leak internals.</summary>
    public bool EnableDetailedErrors { get; set; }

    internal void Validate()
    {
        if (MaxReceiveMessageBytes <= 0 || MaxSendMessageBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxReceiveMessageBytes), "Message size limits must be positive.");
        }
    }
}
