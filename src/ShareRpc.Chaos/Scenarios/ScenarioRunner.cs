// ScenarioRunner: the options and result types, planning and running a scenario (client settings, revokes); producers, subscribers and the report are in ScenarioRunner.*.cs.
using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.Faults;
using ShareRpc.Chaos.History;
using ShareRpc.Chaos.Postgres;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using Sharerpc.V1;

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

    /// <summary>The engine of every producer's and the owner's outbox (docs/client.md, "Outbox stores"); SQLite by default.</summary>
    public OutboxEngine OutboxEngine { get; set; } = OutboxEngine.Sqlite;

    /// <summary>"postgres" with <see cref="PostgresConnectionString"/>, else "sqlite".</summary>
    public string Store => PostgresConnectionString is null ? "sqlite" : "postgres";
}

/// <summary>The result of one seeded scenario.</summary>
public sealed record ScenarioResult(int Seed, int Ops, IReadOnlyDictionary<FaultKind, int> Faults, IReadOnlyList<Violation> Violations, string? Report, TimeSpan Duration)
{
    /// <summary>The engine of the scenario's client outboxes ("sqlite" / "litedb").</summary>
    public string OutboxEngine { get; init; } = "sqlite";

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
public static partial class ScenarioRunner
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
            var owner = new ShareRpcClient(ClientOptions(Path.Combine(dir, "owner.db"), null, 8, options.OutboxEngine));
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
                var client = new ShareRpcClient(ClientOptions(Path.Combine(dir, p.Name + ".db"), handler, p.MaxBatchOps, options.OutboxEngine));
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
                var (log, head, _) = await server.ReadStoredLogAsync(shareIds[s.Index]).ConfigureAwait(false);
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
        return new ScenarioResult(seed, spec.OpCount, history.FaultsFired, violations, report, clock.Elapsed) { Store = store, OutboxEngine = options.OutboxEngine.Name, ServerErrors = serverErrors };
    }

    /// <summary>
    /// Client settings the harness uses: fsync off in the outbox, fast backoff, small batches, and an
    /// optional fault handler in front of the client's own HTTP handler (one server, so one channel).
    /// </summary>
    public static ShareRpcClientOptions ClientOptions(string? outbox, DelegatingHandler? faults, int maxBatchOps, OutboxEngine? outboxEngine = null)
    {
        var options = new ShareRpcClientOptions
        {
            OutboxPath = outbox,
            OutboxEngine = outboxEngine ?? OutboxEngine.Sqlite,
            Outbox = new OutboxOptions { FsyncEveryCommit = false, MaxBatchOps = maxBatchOps },
            InitialBackoff = TimeSpan.FromMilliseconds(2),
            MaxBackoff = TimeSpan.FromMilliseconds(20),
            Linger = TimeSpan.FromMilliseconds(1),
            MaxInFlightBatches = 4,
        };
        if (faults is not null)
        {
            options.Channel.DelegatingHandlers.Add(() => faults);
        }

        return options;
    }

    internal static ObservedDocument ToObserved(Document d) => new(d.Collection, d.Key, d.Value.ToStringUtf8(), d.Version, d.Cursor);

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
}
