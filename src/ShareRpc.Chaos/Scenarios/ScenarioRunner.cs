using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;
using ShareRpc.Chaos.Postgres;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using ShareRpc.Protocol.V1;
using ShareRpc.Wire;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>Settings of seeded scenarios.</summary>
public sealed class ScenarioOptions
{
    public WorkloadOptions Workload { get; set; } = new();

    public FaultMix Faults { get; set; } = new();

    /// <summary>Run the server in its deliberately broken canary mode (acks before commit); the checker must catch it.</summary>
    public bool Canary { get; set; }

    /// <summary>How long draining the outboxes (and subscribers catching up) may take before it counts as stuck.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Where scenario directories go (default: the temp directory); each is removed after its run.</summary>
    public string? WorkDirectory { get; set; }

    /// <summary>
    /// A PostgreSQL connection string: each scenario's server then runs on the PostgreSQL store, in a schema of its
    /// own (<c>chaos_SEED_RANDOM</c>, dropped with CASCADE when the scenario ends). Null (default): the embedded SQLite store.
    /// </summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>"postgres" with <see cref="PostgresConnectionString"/>, else "sqlite".</summary>
    public string Store => PostgresConnectionString is null ? "sqlite" : "postgres";
}

/// <summary>The result of one seeded scenario.</summary>
public sealed record ScenarioResult(int Seed, int Ops, IReadOnlyDictionary<FaultKind, int> Faults, IReadOnlyList<Violation> Violations, string? Report, TimeSpan Duration)
{
    /// <summary>The store the scenario's server really ran on ("sqlite" / "postgres"; the requested one if it never started).</summary>
    public string Store { get; init; } = "sqlite";

    /// <summary>What the server logged at Error or above (an exception no handler mapped to a status: a server bug); none expected.</summary>
    public IReadOnlyList<string> ServerErrors { get; init; } = [];
}

/// <summary>
/// Runs one seeded scenario: an in-process server on 127.0.0.1 (real wire), producers each with their own
/// client, outbox and fault-injecting transport, delegations, revocations and subscribers; records the
/// history, drains every outbox and checks it (<see cref="HistoryChecker"/>).
/// </summary>
public static class ScenarioRunner
{
    /// <summary>The workload and the fault schedule of a seed (the same seed gives the same plan).</summary>
    public static (WorkloadSpec Workload, FaultSchedule Schedule) Plan(int seed, ScenarioOptions options)
    {
        var spec = WorkloadSpec.Generate(seed, new Random(seed), options.Workload);
        var faults = options.Faults;
        if (options.Canary)
        {
            // The canary needs commits that fail after their acks went out.
            faults = new FaultMix { Kinds = [FaultKind.FailBeforeCommit], Rate = 0.3, Horizon = faults.Horizon };
        }

        var schedule = FaultSchedule.Generate(new Random(unchecked((seed * 7919) + 17)), faults,
            spec.Producers.Select(p => p.Name).ToList(), spec.Shares.SelectMany(s => s.Subscribers).ToList());
        return (spec, schedule);
    }

    public static async Task<ScenarioResult> RunAsync(int seed, ScenarioOptions options, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var (spec, schedule) = Plan(seed, options);
        var drainTimeout = options.Canary ? TimeSpan.FromSeconds(3) : options.DrainTimeout; // a canary writer may spin on DATA_LOSS
        var history = new OpHistory();
        var root = options.WorkDirectory ?? Path.GetTempPath();
        Directory.CreateDirectory(root);
        var dir = Directory.CreateTempSubdirectory(Path.Combine(root, $"sharerpc-chaos-{seed}-").Replace(Path.GetTempPath(), "", StringComparison.Ordinal)).FullName;
        if (!dir.StartsWith(root, StringComparison.Ordinal))
        {
            dir = Directory.CreateDirectory(Path.Combine(root, $"sharerpc-chaos-{seed}-{Guid.NewGuid():N}")).FullName;
        }

        var observation = new Observation();
        var disposables = new List<IAsyncDisposable>();
        var handlers = new List<TransportFaultHandler>();
        var postgres = options.PostgresConnectionString;
        var plan = new ServerFaultPlan(schedule, history, options.Canary, postgres is not null);
        var store = options.Store;
        ChaosServer? started = null;
        try
        {
            var server = await ChaosServer.StartAsync(Path.Combine(dir, "server"), plan.Hooks,
                postgres: postgres, schema: postgres is null ? null : ChaosPostgres.SchemaName(seed)).ConfigureAwait(false);
            disposables.Add(server);
            started = server;
            store = server.Store;
            history.Add("harness", EventType.Info, "server", null, server.Schema is null ? store : $"{store}, schema {server.Schema}");
            var owner = new ShareRpcClient(ClientOptions(Path.Combine(dir, "owner.db"), null, 8));
            disposables.Add(owner);

            // Set-up (no faults yet): shares, delegated capabilities.
            var shareRefs = new string[spec.Shares.Count];
            var shareIds = new string[spec.Shares.Count];
            foreach (var s in spec.Shares)
            {
                var created = await owner.CreateShareAsync(server.Address, $"chaos-{seed}-{s.Index}", s.Name, cancellationToken).ConfigureAwait(false);
                shareRefs[s.Index] = created.SturdyRef;
                shareIds[s.Index] = created.ShareId;
            }

            var refs = new Dictionary<string, (string Ref, string CapabilityId)>(StringComparer.Ordinal);
            foreach (var p in spec.Producers)
            {
                if (p.Owner)
                {
                    refs[p.Name] = (shareRefs[p.Share], "");
                    continue;
                }

                var d = await owner.DelegateAsync(shareRefs[p.Share], [Right.Append, Right.Read], null, p.Name, cancellationToken).ConfigureAwait(false);
                refs[p.Name] = (d.SturdyRef, d.CapabilityId);
            }

            var readers = new Dictionary<int, (string Ref, string CapabilityId)>();
            foreach (var s in spec.Shares.Where(s => s.RevokedReader is not null))
            {
                var d = await owner.DelegateAsync(shareRefs[s.Index], [Right.Read], null, s.RevokedReader!, cancellationToken).ConfigureAwait(false);
                readers[s.Index] = (d.SturdyRef, d.CapabilityId);
            }

            plan.Arm();
            history.Add("harness", EventType.Info, "armed", null, $"{schedule.Faults.Count} faults scheduled");

            using var stopSubscribers = new CancellationTokenSource();
            var halfway = spec.Shares.Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
            var subscribers = new List<Subscriber>();
            foreach (var s in spec.Shares)
            {
                for (var i = 0; i < s.Subscribers.Count; i++)
                {
                    var name = s.Subscribers[i];
                    var handler = new TransportFaultHandler(name, schedule, history);
                    handlers.Add(handler);
                    var client = new ShareRpcClient(ClientOptions(null, handler, 1));
                    disposables.Add(client);
                    // r0 follows from the start; the others start halfway, with a snapshot first.
                    var sub = new Subscriber(name, shareIds[s.Index], client, shareRefs[s.Index], i > 0, history);
                    subscribers.Add(sub);
                    sub.Start(i > 0 ? halfway[s.Index].Task : Task.CompletedTask, stopSubscribers.Token);
                }
            }

            // Readers on delegated READ capabilities, revoked halfway (the Subscribe side of the fence).
            var fenced = new ConcurrentDictionary<string, ulong>(StringComparer.Ordinal);
            var revokers = new List<Task>();
            foreach (var s in spec.Shares.Where(s => s.RevokedReader is not null))
            {
                var name = s.RevokedReader!;
                var handler = new TransportFaultHandler(name, schedule, history);
                handlers.Add(handler);
                var client = new ShareRpcClient(ClientOptions(null, handler, 1));
                disposables.Add(client);
                var sub = new Subscriber(name, shareIds[s.Index], client, readers[s.Index].Ref, false, history);
                subscribers.Add(sub);
                sub.Start(Task.CompletedTask, stopSubscribers.Token);
                revokers.Add(RevokeAsync(owner, history, halfway[s.Index].Task, shareRefs[s.Index], name, readers[s.Index].CapabilityId, [name], fenced, cancellationToken));
            }

            // Producers and their revokers.
            var signals = spec.Producers.ToDictionary(p => p.Name, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), StringComparer.Ordinal);
            var revokeAll = spec.Shares.Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
            foreach (var p in spec.Producers.Where(p => p.RevokeAfterOp is not null))
            {
                revokers.Add(RevokeAsync(owner, history, signals[p.Name].Task, shareRefs[p.Share], p.Name, refs[p.Name].CapabilityId,
                    [p.Name], fenced, cancellationToken));
            }

            foreach (var s in spec.Shares.Where(s => s.RevokeAllAfter is not null))
            {
                revokers.Add(RevokeAsync(owner, history, revokeAll[s.Index].Task, shareRefs[s.Index], "all", null,
                    spec.Producers.Where(p => p.Share == s.Index && !p.Owner).Select(p => p.Name).ToList(), fenced, cancellationToken));
            }

            var producers = new List<Producer>();
            foreach (var p in spec.Producers)
            {
                var handler = new TransportFaultHandler(p.Name, schedule, history);
                handlers.Add(handler);
                var client = new ShareRpcClient(ClientOptions(Path.Combine(dir, p.Name + ".db"), handler, p.MaxBatchOps));
                disposables.Add(client);
                var share = spec.Shares[p.Share];
                producers.Add(new Producer(p, client, client.OpenWriter(refs[p.Name].Ref), history));
            }

            await Task.WhenAll(producers.Select(pr => pr.RunAsync(op =>
            {
                var p = pr.Spec;
                if (op == p.RevokeAfterOp)
                {
                    signals[p.Name].TrySetResult();
                }

                if (spec.Shares[p.Share].RevokeAllAfter is { } ra && ra.Producer == p.Name && ra.Op == op)
                {
                    revokeAll[p.Share].TrySetResult();
                }

                if (op == p.Ops.Count / 2 && p.Owner)
                {
                    halfway[p.Share].TrySetResult();
                }
            }))).ConfigureAwait(false);
            foreach (var h in halfway)
            {
                h.TrySetResult();
            }

            await Task.WhenAll(revokers).ConfigureAwait(false);

            // Drain every outbox (faults still on), then stop injecting so the final reads converge.
            await Task.WhenAll(producers.Select(pr => pr.DrainAsync(drainTimeout, observation))).ConfigureAwait(false);
            plan.Disarm();
            foreach (var h in handlers)
            {
                h.Armed = false;
            }

            history.Add("harness", EventType.Info, "drained");

            foreach (var s in spec.Shares)
            {
                var (log, head, _) = await server.ReadLogAsync(shareIds[s.Index]).ConfigureAwait(false);
                var docs = new List<ObservedDocument>();
                await foreach (var d in owner.GetAllDocumentsAsync(shareRefs[s.Index], "", cancellationToken).ConfigureAwait(false))
                {
                    docs.Add(ToObserved(d));
                }

                observation.Shares.Add(new ObservedShare(s.Name, shareIds[s.Index], log, head, docs));
            }

            var heads = observation.Shares.ToDictionary(s => s.ShareId, s => s.Head, StringComparer.Ordinal);
            await Task.WhenAll(subscribers.Select(s => s.WaitForAsync(heads[s.ShareId], fenced.ContainsKey(s.Name), drainTimeout))).ConfigureAwait(false);
            await stopSubscribers.CancelAsync().ConfigureAwait(false);
            foreach (var s in subscribers)
            {
                observation.Subscribers.Add(await s.StopAsync(heads[s.ShareId], fenced.TryGetValue(s.Name, out var f) ? f : null).ConfigureAwait(false));
            }

            foreach (var pr in producers)
            {
                await pr.ObserveAsync(shareIds[pr.Spec.Share], fenced.TryGetValue(pr.Spec.Name, out var f) ? f : null, observation).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            observation.Stuck.Add((Violation.Stuck, "the harness failed: " + e.GetType().Name + ": " + e.Message, "harness"));
            history.Add("harness", EventType.Fail, "harness", null, e.ToString());
        }
        finally
        {
            foreach (var d in Enumerable.Reverse(disposables))
            {
                try
                {
                    await d.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // best effort
                }
            }

            foreach (var h in handlers)
            {
                h.Dispose();
            }

            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }

        // Safety violations first: their slice is the one printed.
        var violations = HistoryChecker.Check(observation).OrderBy(v => v.Kind == Violation.Stuck).ToList();
        var serverErrors = started?.ServerErrors ?? [];
        var report = violations.Count == 0 && serverErrors.Count == 0 ? null : Report(seed, options, spec, schedule, history, violations, serverErrors);
        return new ScenarioResult(seed, spec.OpCount, history.FaultsFired, violations, report, clock.Elapsed) { Store = store, ServerErrors = serverErrors };
    }

    /// <summary>The text printed for a violation: seed, workload, fault schedule and the smallest history slice.</summary>
    public static string Report(int seed, ScenarioOptions options, WorkloadSpec spec, FaultSchedule schedule, OpHistory history, IReadOnlyList<Violation> violations,
        IReadOnlyList<string>? serverErrors = null)
    {
        var b = new StringBuilder();
        serverErrors ??= [];
        var canary = options.Canary ? " (canary)" : "";
        if (violations.Count > 0)
        {
            b.Append(CultureInfo.InvariantCulture, $"VIOLATION seed {seed}{canary} on {options.Store}: {violations.Count} violation(s)\n");
        }
        else
        {
            b.Append(CultureInfo.InvariantCulture, $"SERVER ERROR seed {seed}{canary} on {options.Store}: no violation, {serverErrors.Count} server error(s)\n");
        }
        foreach (var v in violations.Take(5))
        {
            b.Append(CultureInfo.InvariantCulture, $"  [{v.Kind}] {v.Message}\n");
        }

        foreach (var e in serverErrors.Take(5))
        {
            b.Append(CultureInfo.InvariantCulture, $"  [server error] {e}\n");
        }

        b.Append("workload:\n").Append(spec);
        b.Append("fault schedule:\n").Append(schedule);
        if (violations.Count > 0)
        {
            var first = violations[0];
            b.Append(CultureInfo.InvariantCulture, $"history slice for [{first.Kind}] (ops {string.Join(", ", first.OpIds)}):\n");
            foreach (var e in history.Slice(first.OpIds, first.Actors))
            {
                b.Append(e).Append('\n');
            }
        }

        b.Append(CultureInfo.InvariantCulture, $"reproduce: sharerpc chaos --seeds 1 --seed-start {seed}{(options.Canary ? " --canary" : "")}{(options.PostgresConnectionString is null ? "" : " --store postgres")}\n");
        return b.ToString();
    }

    /// <summary>Client settings the harness uses: fsync off in the outbox, fast backoff, small batches, an optional fault handler.</summary>
    public static ShareRpcClientOptions ClientOptions(string? outbox, HttpMessageHandler? handler, int maxBatchOps) => new()
    {
        OutboxPath = outbox,
        Outbox = new OutboxOptions { FsyncEveryCommit = false, MaxBatchOps = maxBatchOps },
        Channel = new GrpcChannelOptions { HttpHandler = handler },
        InitialBackoffMs = 2,
        MaxBackoffMs = 20,
        LingerMs = 1,
        MaxInFlightBatches = 4,
    };

    public static ObservedDocument ToObserved(Document d) => new(d.Collection, d.Key, d.Value.ToStringUtf8(), d.Version, d.Cursor);

    private static async Task RevokeAsync(ShareRpcClient owner, OpHistory history, Task signal, string ownerRef, string what, string? capabilityId,
        IReadOnlyList<string> producers, ConcurrentDictionary<string, ulong> fenced, CancellationToken ct)
    {
        await signal.ConfigureAwait(false);
        history.Add("owner", EventType.Invoke, "revoke", null, what);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var r = capabilityId is null
                    ? await owner.RevokeAllAsync(ownerRef, ct).ConfigureAwait(false)
                    : await owner.RevokeAsync(ownerRef, capabilityId, ct).ConfigureAwait(false);
                // The fence is judged against the cursor read after the revoke returned.
                var cursor = (await owner.RedeemAsync(ownerRef, ct).ConfigureAwait(false)).Cursor;
                foreach (var p in producers)
                {
                    fenced.AddOrUpdate(p, cursor, (_, old) => Math.Min(old, cursor));
                }

                history.Add("owner", EventType.Ok, "revoke", null, $"{what}: epoch {r.Epoch}, cursor after {cursor}, fences {string.Join(",", producers)}");
                return;
            }
            catch (ShareRpcCallException e) when (e.StatusCode == StatusCode.Unavailable && attempt < 100)
            {
                history.Add("owner", EventType.Fail, "revoke", null, e.Message + " (retrying)");
                await Task.Delay(5, ct).ConfigureAwait(false);
            }
        }
    }

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

    /// <summary>One subscriber: follows the share from cursor 0 (or from a snapshot), across faults and revokes.</summary>
    internal sealed class Subscriber(string name, string shareId, ShareRpcClient client, string sturdyRef, bool snapshot, OpHistory history)
    {
        private readonly List<(ulong, string)> _ops = new();
        private readonly List<ObservedDocument> _snapshot = new();
        private ulong? _snapshotCursor;
        private bool _inSnapshot;
        private long _last;
        private Task _task = Task.CompletedTask;
        private readonly SemaphoreSlim _progress = new(0, int.MaxValue);
        private string? _endedWith;

        public string ShareId => shareId;

        public string Name => name;

        public void Start(Task startWhen, CancellationToken ct) => _task = Task.Run(async () =>
        {
            await startWhen.ConfigureAwait(false);
            try
            {
                await foreach (var e in client.SubscribeAsync(sturdyRef, 0, snapshot, ct).ConfigureAwait(false))
                {
                    lock (_ops)
                    {
                        switch (e.EventCase)
                        {
                            case SubscribeResponse.EventOneofCase.Snapshot:
                                if (!_inSnapshot)
                                {
                                    _snapshot.Clear(); // a snapshot cut off is restarted whole
                                    _inSnapshot = true;
                                }

                                _snapshot.AddRange(e.Snapshot.Documents.Select(ToObserved));
                                if (e.Snapshot.LastChunk)
                                {
                                    _inSnapshot = false;
                                    _snapshotCursor = e.Snapshot.Cursor;
                                    Interlocked.Exchange(ref _last, (long)e.Snapshot.Cursor);
                                    history.Add(name, EventType.Info, "snapshot", null, $"cursor {e.Snapshot.Cursor}, {_snapshot.Count} documents");
                                }

                                break;
                            case SubscribeResponse.EventOneofCase.Op:
                                _ops.Add((e.Op.Cursor, e.Op.Op.OpId));
                                Interlocked.Exchange(ref _last, (long)e.Op.Cursor);
                                break;
                        }
                    }

                    _progress.Release();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                _endedWith = ex.Message;
                history.Add(name, EventType.Fail, "subscribe", null, ex.Message);
            }
            finally
            {
                _progress.Release(); // the stream ended: wake WaitForAsync
            }
        }, CancellationToken.None);

        /// <summary>
        /// Waits until the subscriber has reached <paramref name="head"/> — or, for a revoked reader
        /// (<paramref name="fenced"/>), until its stream has ended: the server ends it after RevokeCapability has
        /// returned (docs/server.md, fence on streams), so the end may still be on its way when the reader already
        /// holds every op up to the fence. Either way at most <paramref name="timeout"/>.
        /// </summary>
        public async Task WaitForAsync(ulong head, bool fenced, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            TimeSpan? caughtUp = null;
            while (clock.Elapsed < timeout && !_task.IsCompleted)
            {
                if ((ulong)Interlocked.Read(ref _last) >= head)
                {
                    caughtUp ??= clock.Elapsed;
                    if (!fenced)
                    {
                        return;
                    }
                }

                await _progress.WaitAsync(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
            }

            if (fenced && caughtUp is { } at && _task.IsCompleted)
            {
                var after = clock.Elapsed - at;
                history.Add(name, EventType.Info, "fence end", null, string.Create(CultureInfo.InvariantCulture, $"the stream ended {after.TotalMilliseconds:0.0} ms after the reader held every op up to the head"));
            }
        }

        public async Task<ObservedSubscriber> StopAsync(ulong head, ulong? fencedAfter)
        {
            await _task.ConfigureAwait(false);
            lock (_ops)
            {
                var caughtUp = (ulong)Interlocked.Read(ref _last) >= head && (!snapshot || _snapshotCursor is not null);
                return new ObservedSubscriber(name, shareId, _snapshotCursor, snapshot ? [.. _snapshot] : null, [.. _ops], caughtUp, fencedAfter, _endedWith);
            }
        }
    }
}
