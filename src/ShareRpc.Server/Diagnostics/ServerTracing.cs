using System.Diagnostics;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;

namespace ShareRpc.Server.Diagnostics;

/// <summary>
/// The server's spans on the ActivitySource <c>ShareRpc.Server</c> (docs/design.md, "Diagnostics"):
/// one <c>sharerpc.apply</c> span per AppendOps batch, from queued to committed, a child of the
/// call's own ASP.NET Core / grpc-dotnet span (so the client's gRPC span stays its ancestor), with a
/// link to the W3C trace context each op carries (<c>Op.traceparent</c>, captured when the producer
/// enqueued it — also when this is a replay after the producer crashed). The source is static, as
/// ActivitySources are: a listener subscribes to it by name, and spans name no engine.
/// </summary>
internal static class ServerTracing
{
    public const string ApplySpan = "sharerpc.apply";

    /// <summary>Links one apply span carries at most (links): a batch holds up to 1024 ops, most often from one trace.</summary>
    public const int MaxLinksPerSpan = 128;

    public static readonly ActivitySource Source = new(ShareRpcServerDiagnostics.ActivitySourceName, typeof(ServerTracing).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// Starts the apply span of <paramref name="batch"/>, or returns null when nobody listens. The
    /// caller's current activity is left current: the span ends when the batch commits, while the
    /// stream reads on.
    /// </summary>
    public static Activity? StartApply(LiveRefClaims claims, AppendOpsRequest batch)
    {
        if (!Source.HasListeners()) return null;
        var previous = Activity.Current;
        var activity = Source.StartActivity(ApplySpan, ActivityKind.Consumer, previous?.Context ?? default, tags: null, links: LinksOf(batch));
        Activity.Current = previous;
        if (activity is null) return null;
        activity.SetTag("sharerpc.share.id", claims.ShareId);
        activity.SetTag("sharerpc.capability.id", claims.CapabilityId);
        activity.SetTag("sharerpc.batch.id", batch.BatchId);
        activity.SetTag("sharerpc.producer.id", batch.ProducerId);
        activity.SetTag("sharerpc.batch.ops", batch.Ops.Count);
        return activity;
    }

    /// <summary>The distinct trace contexts the ops carry (at most <see cref="MaxLinksPerSpan"/>); unparsable ones are skipped.</summary>
    public static List<ActivityLink>? LinksOf(AppendOpsRequest batch)
    {
        List<ActivityLink>? links = null;
        HashSet<string>? seen = null;
        foreach (var op in batch.Ops)
        {
            if (op.Traceparent.Length == 0) continue;
            seen ??= new HashSet<string>(StringComparer.Ordinal);
            if (!seen.Add(op.Traceparent)) continue;
            if (!ActivityContext.TryParse(op.Traceparent, op.Tracestate.Length == 0 ? null : op.Tracestate, isRemote: true, out var context)) continue;
            (links ??= []).Add(new ActivityLink(context));
            if (links.Count == MaxLinksPerSpan) break;
        }

        return links;
    }
}
