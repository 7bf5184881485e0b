using System.IO.Pipelines;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Sharerpc.V1;

namespace ShareRpc.Server.Hosting;

/// <summary>
/// The request body of a unary or server-streaming ShareRpc call must arrive whole within
/// <see cref="ShareRpcServerOptions.RequestBodyTimeout"/>. Measured on Grpc.AspNetCore 2.85 /
/// Kestrel: a body that stops altogether is aborted by Kestrel's MinRequestBodyDataRate (240 B/s
/// after a 5 s grace) with a stream reset and no gRPC status; one that trickles above that rate is
/// never ended, so a peer could hold a call (and its partial message, up to 4 MiB) for hours. This
/// reader ends the read with UNAVAILABLE idle-timeout, which Grpc.AspNetCore sends as the call's
/// status. AppendOps is not wrapped: its idle timeout is its own (RequestIdleTimeout).
/// </summary>
internal sealed class RequestBodyDeadline(PipeReader inner, CancellationToken deadline, TimeSpan timeout) : PipeReader
{
    /// <summary>Puts the deadline on <paramref name="context"/>'s request body; the timer is disposed with the request.</summary>
    public static void Apply(HttpContext context, TimeSpan timeout, TimeProvider clock)
    {
        if (context.Features.Get<IRequestBodyPipeFeature>() is not { } body) return;
        var timer = new CancellationTokenSource(timeout, clock);
        context.Response.RegisterForDispose(timer);
        context.Features.Set<IRequestBodyPipeFeature>(new Feature(new RequestBodyDeadline(body.Reader, timer.Token, timeout)));
    }

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline);
        try
        {
            return await inner.ReadAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            var seconds = timeout.TotalSeconds;
            throw new RpcException(
                new Status(StatusCode.Unavailable, $"the request message did not arrive whole within {seconds:0.###} s (RequestBodyTimeout = {seconds:0.###} s)"),
                new Metadata { { Reasons.TrailerName, Reasons.IdleTimeout } });
        }
    }

    public override bool TryRead(out ReadResult result) => inner.TryRead(out result);

    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    private sealed class Feature(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}
