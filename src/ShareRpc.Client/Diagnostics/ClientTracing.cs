using System.Diagnostics;
using Sharerpc.V1;

namespace ShareRpc.Client.Diagnostics;

/// <summary>
/// The client's spans on the ActivitySource <c>ShareRpc.Client</c> (docs/design.md, "Diagnostics"),
/// and the W3C trace context each op carries: captured when the op is enqueued (the
/// <c>sharerpc.enqueue</c> span's, else the caller's current activity's), written into the op
/// (<c>Op.traceparent</c>, <c>Op.tracestate</c>) before it becomes durable, so it travels inside
/// the stored bytes through every resend, a crash and a restart — and the server's apply span links
/// to it. With nothing listening and no current activity, nothing is captured and the op's bytes
/// are as before.
/// </summary>
internal static class ClientTracing
{
    public const string EnqueueSpan = "sharerpc.enqueue";
    public const string StreamSpan = "sharerpc.append_ops";

    /// <summary>The W3C limit on tracestate (chars): a longer one is not carried.</summary>
    public const int MaxTracestateChars = 512;

    public static readonly ActivitySource Source = new(ShareRpcClientDiagnostics.ActivitySourceName, typeof(ClientTracing).Assembly.GetName().Version?.ToString());

    /// <summary>A producer span for enqueuing <paramref name="ops"/> ops into <paramref name="shareId"/>, or null when nobody listens.</summary>
    public static Activity? StartEnqueue(string shareId, int ops)
    {
        var activity = Source.StartActivity(EnqueueSpan, ActivityKind.Producer);
        activity?.SetTag("sharerpc.share.id", shareId);
        activity?.SetTag("sharerpc.ops", ops);
        return activity;
    }

    /// <summary>Writes the context of <paramref name="activity"/> (else the current one) into <paramref name="op"/>, unless it carries one already.</summary>
    public static void Stamp(Op op, Activity? activity)
    {
        var source = activity ?? Activity.Current;
        if (source is null || source.IdFormat != ActivityIdFormat.W3C || op.Traceparent.Length > 0) return;
        op.Traceparent = source.Id!;
        if (source.TraceStateString is { Length: > 0 and <= MaxTracestateChars } state) op.Tracestate = state;
    }
}
