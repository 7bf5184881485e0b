// ScenarioRunner: the producer actor (enqueues its ops, records the history, observes its outbox).
using System.Collections.Concurrent;
using System.Globalization;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.History;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

namespace ShareRpc.Chaos.Scenarios;

public static partial class ScenarioRunner
{
    /// <summary>One producer: enqueues its ops, records invoke / ok / indeterminate and each ack.</summary>
    private sealed class Producer(ProducerSpec spec, ShareRpcClient client, ShareWriter writer, OpHistory history)
    {
        private readonly ConcurrentDictionary<string, (ulong Seq, bool Durable)> _ops = new(StringComparer.Ordinal);

        public ProducerSpec Spec => spec;

        public async Task RunAsync(Action<int> afterOp)
        {
            foreach (var op in spec.Ops)
            {
                if (op.PauseMs > 0)
                {
                    await Task.Delay(op.PauseMs).ConfigureAwait(false);
                }

                history.Add(spec.Name, EventType.Invoke, "enqueue", op.OpId, op.ToString());
                try
                {
                    var pending = await writer.EnqueueAsync(op.ToProto()).ConfigureAwait(false);
                    _ops[op.OpId] = (pending.Seq, true);
                    history.Add(spec.Name, EventType.Ok, "enqueue", op.OpId, "seq " + pending.Seq.ToString(CultureInfo.InvariantCulture));
                    _ = pending.Acked.ContinueWith(
                        t => history.Add(spec.Name, t.IsCompletedSuccessfully ? EventType.Ok : EventType.Fail, "ack", op.OpId,
                            t.IsCompletedSuccessfully ? Describe(t.Result) : t.Exception?.InnerException?.Message ?? "cancelled"),
                        CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
                catch (Exception e)
                {
                    _ops[op.OpId] = (0, false);
                    history.Add(spec.Name, EventType.Indeterminate, "enqueue", op.OpId, e.Message);
                }

                afterOp(op.Index);
            }
        }

        public async Task DrainAsync(TimeSpan timeout, Observation observation)
        {
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await writer.FlushAsync(cts.Token).ConfigureAwait(false);
                history.Add(spec.Name, EventType.Info, "drained");
            }
            catch (ShareRpcCallException e)
            {
                history.Add(spec.Name, EventType.Info, "stopped", null, e.Message);
            }
            catch (OperationCanceledException)
            {
                var p = await writer.GetProgressAsync().ConfigureAwait(false);
                lock (observation)
                {
                    observation.Stuck.Add((Violation.Stuck, $"{spec.Name}: outbox not drained after {timeout.TotalSeconds:0}s ({p.PendingOps} pending, last error {p.LastError})", spec.Name));
                }
            }
        }

        public async Task ObserveAsync(string shareId, ulong? fencedAfter, Observation observation)
        {
            var info = (await client.Outbox.GetProducersAsync().ConfigureAwait(false)).Single(p => p.ShareId == shareId);
            var status = await client.Outbox.GetStatusAsync(shareId).ConfigureAwait(false);
            var ops = new List<ObservedOp>();
            foreach (var op in spec.Ops)
            {
                var (seq, durable) = _ops.GetValueOrDefault(op.OpId);
                var outcome = await client.Outbox.GetOutcomeAsync(op.OpId).ConfigureAwait(false);
                ops.Add(new ObservedOp(op.OpId, spec.Name, seq, durable, outcome, true));
            }

            // Unacked ops must all still be in the outbox (pending or sealed).
            var unacked = ops.Count(o => o.Durable && o.Outcome is null);
            if (unacked != status.PendingOps)
            {
                ops = ops.Select(o => o.Durable && o.Outcome is null ? o with { InOutbox = false } : o).ToList();
            }

            lock (observation)
            {
                observation.Producers.Add(new ObservedProducer(spec.Name, shareId, info.ProducerId, writer.StopError?.Message ?? status.StoppedReason, fencedAfter));
                observation.Ops.AddRange(ops);
            }
        }

        private static string Describe(OpOutcome o) => o.Status == OpStatus.Rejected
            ? $"REJECTED {o.RejectReason}: {o.Detail}"
            : string.Create(CultureInfo.InvariantCulture, $"{o.Status.ToString().ToUpperInvariant()} cursor {o.Cursor} version {o.Version}");
    }
}
