using System.Globalization;
using System.Text.RegularExpressions;
using Grpc.Core;
using ShareRpc.Client.Diagnostics;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Client.Sending;

/// <summary>
/// Poison ops (docs/client.md, "Poison ops"): a batch refused at call level with INVALID_ARGUMENT or
/// RESOURCE_EXHAUSTED whose <c>sharerpc-field</c> names one of its ops (<c>ops[3].put.value</c>) would
/// be refused on every resend and block the share forever. The sender sets that op aside with the
/// refusal and goes on with the ops behind it.
/// </summary>
internal sealed partial class ShareSender
{
    // ops[N].<field of the op>; a refused seq is the sender's own error, never the op's.
    private static readonly Regex s_opField = new(@"^ops\[(\d+)\]\.(?!seq$)(.+)$", RegexOptions.CultureInvariant | RegexOptions.Compiled);

    /// <summary>
    /// The refusal as a poison op of the batch at the head of the window, or null. The server acks
    /// every batch before a refused one and ends the stream with the refusal (docs/design.md,
    /// "AppendOps semantics"), so the refused batch is the oldest one in flight.
    /// </summary>
    private static PoisonRefusal? PoisonIn(RpcException ex, Queue<SealedBatch> inFlight)
    {
        if (ex.StatusCode is not (StatusCode.InvalidArgument or StatusCode.ResourceExhausted)
            || ex.Trailers.GetValue(Reasons.FieldTrailerName) is not { } field
            || s_opField.Match(field) is not { Success: true } match
            || !int.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return null;
        }

        lock (inFlight)
        {
            return inFlight.TryPeek(out var head) && index < head.OpCount
                ? new PoisonRefusal(head, index, match.Groups[2].Value, ShareRpcCallException.From(ex))
                : null;
        }
    }

    /// <summary>
    /// Sets the refused op aside in the outbox (the batches from the refused one on are unsealed and
    /// their ops sealed again behind it), fails its waiter with the refusal and tells the application.
    /// False when the outbox cannot place the refusal: then the sender stops, as for any refusal.
    /// </summary>
    private async Task<bool> SetAsideAsync(PoisonRefusal refusal)
    {
        var poison = await Outbox.SetAsideAsync(ShareId, refusal.Batch.BatchId, refusal.OpIndex, refusal.Error, refusal.Field).ConfigureAwait(false);
        if (poison is null)
        {
            return false;
        }

        LastError = $"op {poison.OpId} set aside: {refusal.Error.Message}";
        _client.Metrics.OpSetAside();
        ClientLog.PoisonOpSetAside(_client.Logger, poison.OpId, poison.Seq, ShareId, refusal.Error.StatusCode.ToString(), refusal.Error.Reason ?? "", refusal.Field, refusal.Error.Status.Detail);
        _writer.OnSetAside(poison);
        SignalProgress();
        return true;
    }

    /// <summary>A call-level refusal naming op <see cref="OpIndex"/> of <see cref="Batch"/>.</summary>
    private sealed class PoisonRefusal(SealedBatch batch, int opIndex, string field, ShareRpcCallException error) : Exception(error.Message, error)
    {
        public SealedBatch Batch { get; } = batch;

        public int OpIndex { get; } = opIndex;

        /// <summary>The refused field of the op, e.g. <c>put.value</c>.</summary>
        public string Field { get; } = field;

        public ShareRpcCallException Error { get; } = error;
    }
}
