using Microsoft.Extensions.Options;

namespace ShareRpc.Client.DependencyInjection;

/// <summary>
/// Validates <see cref="ShareRpcClientOptions"/> for the options pattern: each broken limit is
/// named with its value; <see cref="ShareRpcClientOptions.Validate"/> (what the client's
/// constructor runs) stays the final word, so nothing it refuses passes here.
/// </summary>
internal sealed class ShareRpcClientOptionsValidator : IValidateOptions<ShareRpcClientOptions>
{
    public ValidateOptionsResult Validate(string? name, ShareRpcClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();

        void Positive(long value, string field)
        {
            if (value <= 0)
            {
                failures.Add($"ShareRpcClientOptions.{field} must be > 0 (was {value}).");
            }
        }

        void NotNegative(long value, string field)
        {
            if (value < 0)
            {
                failures.Add($"ShareRpcClientOptions.{field} must be >= 0 (was {value}).");
            }
        }

        Positive(options.MaxInFlightBatches, nameof(options.MaxInFlightBatches));
        NotNegative(options.LingerMs, nameof(options.LingerMs));
        Positive(options.InitialBackoffMs, nameof(options.InitialBackoffMs));
        if (options.MaxBackoffMs < options.InitialBackoffMs)
        {
            failures.Add($"ShareRpcClientOptions.MaxBackoffMs must be >= InitialBackoffMs (was {options.MaxBackoffMs} < {options.InitialBackoffMs}).");
        }

        Positive(options.UnaryTimeoutMs, nameof(options.UnaryTimeoutMs));
        NotNegative(options.LiveRefRefreshMarginMs, nameof(options.LiveRefRefreshMarginMs));

        if (options.Outbox is null)
        {
            failures.Add("ShareRpcClientOptions.Outbox must be set.");
        }
        else
        {
            Positive(options.Outbox.MaxBatchOps, "Outbox.MaxBatchOps");
            Positive(options.Outbox.MaxBatchBytes, "Outbox.MaxBatchBytes");
            Positive(options.Outbox.MaxOpsPerCommit, "Outbox.MaxOpsPerCommit");
            Positive(options.Outbox.MaxQueuedEnqueues, "Outbox.MaxQueuedEnqueues");
            if (options.Outbox.AckedRetention < TimeSpan.Zero)
            {
                failures.Add($"ShareRpcClientOptions.Outbox.AckedRetention must be >= 0 (was {options.Outbox.AckedRetention}).");
            }
        }

        if (options.Channel is null)
        {
            failures.Add("ShareRpcClientOptions.Channel must be set.");
        }
        else
        {
            Positive(options.Channel.MaxReceiveMessageBytes, "Channel.MaxReceiveMessageBytes");
            Positive(options.Channel.MaxSendMessageBytes, "Channel.MaxSendMessageBytes");
            Positive(options.Channel.MaxBufferedWriteMessages, "Channel.MaxBufferedWriteMessages");
            Positive(options.Channel.ConnectTimeoutMs, "Channel.ConnectTimeoutMs");
            if (options.Channel.InitialStreamWindowBytes < 65_535)
            {
                failures.Add($"ShareRpcClientOptions.Channel.InitialStreamWindowBytes must be >= 65535, the HTTP/2 minimum (was {options.Channel.InitialStreamWindowBytes}).");
            }
        }

        if (failures.Count == 0 && options.Outbox is not null)
        {
            try
            {
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                failures.Add("ShareRpcClientOptions: " + ex.Message);
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
