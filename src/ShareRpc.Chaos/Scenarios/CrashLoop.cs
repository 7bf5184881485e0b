using System.Diagnostics;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using ShareRpc.Chaos.Checker;
using ShareRpc.Chaos.History;
using ShareRpc.Chaos.Postgres;
using ShareRpc.Client;
using ShareRpc.Client.Outbox;
using ShareRpc.Server.Postgres;
using ShareRpc.Server.Storage;
using ShareRpc.Server.Storage.Sqlite;
using Sharerpc.V1;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>The result of one crash-loop iteration.</summary>
public sealed record CrashLoopResult(int Seed, int Ops, int Kills, IReadOnlyList<Violation> Violations, string? Report, TimeSpan Duration)
{
    /// <summary>The store the server ran on: "sqlite" or "postgres".</summary>
    public string Store { get; init; } = "sqlite";

    /// <summary>The engine of the writer's outbox: "sqlite" or "litedb".</summary>
    public string OutboxEngine { get; init; } = "sqlite";

    /// <summary>Times the server was SIGKILLed and restarted on the same storage before the end (the final kill not counted).</summary>
    public int ServerRestarts { get; init; }
}

/// <summary>
/// Real processes, killed for real: <c>sharerpc serve</c> and a writer (<c>sharerpc chaos writer</c>) are SIGKILLed at
/// seeded moments and restarted on the same files (server data directory, writer outbox); a subscriber in this
/// process follows the share across the restarts. At the end the server is killed once more, its log is read
/// from the SQLite file, and everything goes through the same <see cref="HistoryChecker"/>. On PostgreSQL the server
/// is <c>sharerpc serve --store postgres</c> on a database made for the loop (restarted on the same database, read
/// from it at the end, dropped after).
/// </summary>
public static class CrashLoop
{
    public const int DefaultOps = 200;

    /// <summary>The writer's op <paramref name="i"/> of a crash loop (fixed by the seed; the op id encodes the index).</summary>
    public static Op CrashOp(int seed, int i)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"crash{seed}.{i:D5}");
        var value = ByteString.CopyFromUtf8(string.Create(CultureInfo.InvariantCulture, $"v{seed}.{i}"));
        return (i + seed) % 3 == 0
            ? new Op { OpId = id, Append = new Append { Collection = "events", Value = value, ContentType = "text/plain" } }
            : new Op { OpId = id, Put = new Put { Collection = "docs", Key = "k" + ((i * 7 + seed) % 8).ToString(CultureInfo.InvariantCulture), Value = value, ContentType = "text/plain" } };
    }

    /// <summary>
    /// The writer child (<c>sharerpc chaos writer</c>): resumes its outbox, enqueues its remaining ops one at a
    /// time (each durable before the next, so what is durable is always a prefix), flushes, prints "done". The engine
    /// of its outbox is <paramref name="outboxEngine"/> (null: SQLite).
    /// </summary>
    public static async Task<int> RunWriterAsync(string sturdyRef, string outbox, int seed, int ops, TextWriter output, OutboxEngine? outboxEngine = null)
    {
        var client = new ShareRpcClient(new ShareRpcClientOptions
        {
            OutboxPath = outbox,
            OutboxEngine = outboxEngine ?? OutboxEngine.Sqlite,
            Outbox = new OutboxOptions { FsyncEveryCommit = false, MaxBatchOps = 16 },
            InitialBackoff = TimeSpan.FromMilliseconds(10),
            MaxBackoff = TimeSpan.FromMilliseconds(200),
        });
        await using var clientScope = client.ConfigureAwait(false);
        await client.ResumeAllAsync().ConfigureAwait(false);
        var writer = client.OpenWriter(sturdyRef);
        var producer = (await client.Outbox.GetProducersAsync().ConfigureAwait(false)).FirstOrDefault(p => p.ShareId == writer.ShareId);
        var start = producer is null ? 0 : (int)(producer.NextSeq - 1);
        output.WriteLine($"resume at {start}");
        output.Flush();
        for (var i = start; i < ops; i++)
        {
            await writer.EnqueueAsync(CrashOp(seed, i)).ConfigureAwait(false);
            await Task.Delay(2).ConfigureAwait(false);
        }

        output.WriteLine("enqueued all");
        output.Flush();
        await writer.FlushAsync().ConfigureAwait(false);
        output.WriteLine("done");
        output.Flush();
        return 0;
    }

    /// <param name="seed">Fixes the kill schedule and the writer's ops.</param>
    /// <param name="cli">The sharerpc CLI (sharerpc.dll, or an executable).</param>
    /// <param name="workDirectory">Where the loop's directory goes (default: the temp directory); removed after.</param>
    /// <param name="ops">Ops the writer enqueues.</param>
    /// <param name="postgres">
    /// A PostgreSQL connection string whose user may CREATE DATABASE: the server then runs on PostgreSQL, on a fresh
    /// database <c>sharerpc_crash_SEED_RANDOM</c> made on that server and dropped at the end. Null: SQLite files.
    /// </param>
    /// <param name="outboxEngine">The engine of the writer's outbox (null: SQLite); the writer child gets it as <c>--outbox-engine</c>.</param>
    public static async Task<CrashLoopResult> RunAsync(int seed, string cli, string? workDirectory = null, int ops = DefaultOps, string? postgres = null, OutboxEngine? outboxEngine = null)
    {
        var engine = outboxEngine ?? OutboxEngine.Sqlite;
        var clock = Stopwatch.StartNew();
        var r = new Random(unchecked((seed * 104729) + 7));
        var history = new OpHistory();
        var root = workDirectory ?? Path.GetTempPath();
        var dir = Directory.CreateDirectory(Path.Combine(root, $"sharerpc-crash-{seed}-{Guid.NewGuid():N}")).FullName;
        var data = Path.Combine(dir, "server");
        var keyFile = Path.Combine(dir, "server.key");
        string? database = null; // the loop's PostgreSQL database (a connection string to it)
        var writerOutbox = Path.Combine(dir, "writer.db");
        var port = ChildProcess.FreePort();
        var address = $"http://127.0.0.1:{port}";
        var observation = new Observation();
        var kills = 0;
        var serverRestarts = 0;
        var plan = new StringBuilder();
        ChildProcess? server = null;
        ChildProcess? writer = null;
        try
        {
            if (postgres is not null)
            {
                database = await ChaosPostgres.CreateDatabaseAsync(postgres, seed).ConfigureAwait(false);
                history.Add("server", EventType.Info, "database", null, ChaosPostgres.Describe(database));
            }

            async Task<ChildProcess> StartServerAsync()
            {
                var s = database is null
                    ? ChildProcess.Start(cli, "serve", "--data", data, "--port", port.ToString(CultureInfo.InvariantCulture))
                    : ChildProcess.Start(cli, "serve", "--store", "postgres", "--pg", database, "--key-file", keyFile, "--port", port.ToString(CultureInfo.InvariantCulture));
                await s.WaitForLineAsync(l => l.StartsWith("listening on", StringComparison.Ordinal)).ConfigureAwait(false);
                history.Add("server", EventType.Info, "started");
                return s;
            }

            string sturdy;
            server = await StartServerAsync().ConfigureAwait(false);
            var ownerClient = new ShareRpcClient(new ShareRpcClientOptions { OutboxPath = Path.Combine(dir, "owner.db"), Outbox = new OutboxOptions { FsyncEveryCommit = false } });
            await using (ownerClient.ConfigureAwait(false))
            {
                sturdy = await ownerClient.EnsureShareAsync(address, $"crash-{seed}").ConfigureAwait(false);
            }

            var observer = new ShareRpcClient(new ShareRpcClientOptions { InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(200) });

            await using var observerScope = observer.ConfigureAwait(false);
            using var stopSub = new CancellationTokenSource();
            var seen = new List<(ulong, string)>();
            long last = 0;
            var subscriber = Task.Run(async () =>
            {
                try
                {
                    await foreach (var e in observer.SubscribeAsync(sturdy, 0, false, stopSub.Token).ConfigureAwait(false))
                    {
                        if (e.Op is { } op)
                        {
                            lock (seen)
                            {
                                seen.Add((op.Cursor, op.Op.OpId));
                            }

                            Interlocked.Exchange(ref last, (long)op.Cursor);
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });

            ChildProcess StartWriter()
            {
                history.Add("writer", EventType.Info, "started");
                return ChildProcess.Start(cli, "chaos", "writer", "--ref", sturdy, "--outbox", writerOutbox,
                    "--seed", seed.ToString(CultureInfo.InvariantCulture), "--ops", ops.ToString(CultureInfo.InvariantCulture), "--outbox-engine", engine.Name);
            }

            writer = StartWriter();
            var rounds = 3 + r.Next(4);
            for (var k = 0; k < rounds; k++)
            {
                var wait = r.Next(150, 900);
                var target = r.Next(3); // 0 server, 1 writer, 2 both
                var pause = r.Next(0, 200);
                plan.Append(CultureInfo.InvariantCulture, $"  after {wait}ms kill {(target == 0 ? "server" : target == 1 ? "writer" : "server+writer")}, restart after {pause}ms\n");
                await Task.Delay(wait).ConfigureAwait(false);
                if (target != 1)
                {
                    await server.KillAsync().ConfigureAwait(false);
                    kills++;
                    history.Add("server", EventType.Fault, "sigkill");
                }

                if (target != 0)
                {
                    if (!writer.HasExited)
                    {
                        kills++;
                    }

                    await writer.KillAsync().ConfigureAwait(false);
                    history.Add("writer", EventType.Fault, "sigkill");
                }

                await Task.Delay(pause).ConfigureAwait(false);
                if (target != 1)
                {
                    await server.DisposeAsync().ConfigureAwait(false);
                    server = await StartServerAsync().ConfigureAwait(false);
                    serverRestarts++;
                }

                if (target != 0)
                {
                    await writer.DisposeAsync().ConfigureAwait(false);
                    writer = StartWriter();
                }
            }

            // Let the last writer finish everything.
            var exit = await writer.WaitForExitAsync(120_000).ConfigureAwait(false);
            if (exit != 0 || !writer.Lines.Contains("done"))
            {
                observation.Stuck.Add((Violation.Stuck, $"the last writer exited {exit} without finishing: {string.Join(" | ", writer.Lines.TakeLast(5))}", "writer"));
            }

            var redeemed = await observer.RedeemAsync(sturdy).ConfigureAwait(false);
            var docs = new List<ObservedDocument>();
            await foreach (var d in observer.GetAllDocumentsAsync(sturdy).ConfigureAwait(false))
            {
                docs.Add(ScenarioRunner.ToObserved(d));
            }

            var until = DateTime.UtcNow.AddSeconds(30);
            while ((ulong)Interlocked.Read(ref last) < redeemed.Cursor && DateTime.UtcNow < until)
            {
                await Task.Delay(20).ConfigureAwait(false);
            }

            await stopSub.CancelAsync().ConfigureAwait(false);
            await subscriber.ConfigureAwait(false);

            // One more SIGKILL, then the log straight from the storage the dead server left (its SQLite file, or its database).
            await server.KillAsync().ConfigureAwait(false);
            kills++;
            IShareStore store = database is null
                ? SqliteShareStore.Open(data)
                : await PostgresShareStore.OpenAsync(new PostgresStoreOptions { ConnectionString = database, MaxPoolSize = 3, WriteConnections = 1 }).ConfigureAwait(false);
            await using (store)
            {
                var reader = await store.BeginReadAsync().ConfigureAwait(false);
                await using var readerScope = reader.ConfigureAwait(false);
                var share = await reader.GetShareAsync(redeemed.ShareId).ConfigureAwait(false) ?? throw new InvalidOperationException("share lost");
                var log = await reader.ReadLogAsync(share.RowId, 1, int.MaxValue).ConfigureAwait(false);
                observation.Shares.Add(new ObservedShare("share", share.ShareId, log, share.Cursor, docs));
            }

            lock (seen)
            {
                observation.Subscribers.Add(new ObservedSubscriber("observer", redeemed.ShareId, null, null, [.. seen], (ulong)Interlocked.Read(ref last) >= redeemed.Cursor));
            }

            var outbox = engine.Open(writerOutbox);

            await using (outbox.ConfigureAwait(false))
            {
                var producer = (await outbox.GetProducersAsync().ConfigureAwait(false)).Single();
                observation.Producers.Add(new ObservedProducer("writer", producer.ShareId, producer.ProducerId, null, null));
                var durable = (int)(producer.NextSeq - 1);
                if (durable != ops)
                {
                    observation.Stuck.Add((Violation.Lost, $"the outbox holds {durable} ops, the writer enqueued {ops}", "writer"));
                }

                for (var i = 0; i < ops; i++)
                {
                    var id = CrashOp(seed, i).OpId;
                    observation.Ops.Add(new ObservedOp(id, "writer", (ulong)i + 1, i < durable, await outbox.GetOutcomeAsync(id).ConfigureAwait(false), true));
                }
            }
        }
        catch (Exception e)
        {
            observation.Stuck.Add((Violation.Stuck, "the crash loop failed: " + e.GetType().Name + ": " + e.Message, "harness"));
        }
        finally
        {
            if (writer is not null)
            {
                await writer.DisposeAsync().ConfigureAwait(false);
            }

            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            if (database is not null)
            {
                try
                {
                    await ChaosPostgres.DropDatabaseAsync(postgres!, database).ConfigureAwait(false);
                }
                catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException)
                {
                    history.Add("harness", EventType.Info, "drop database failed", null, e.Message);
                }
            }

            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }

        var violations = HistoryChecker.Check(observation);
        string? report = null;
        if (violations.Count > 0)
        {
            var b = new StringBuilder();
            b.Append(CultureInfo.InvariantCulture, $"VIOLATION crash loop seed {seed} on {(postgres is null ? "sqlite" : "postgres")}: {violations.Count} violation(s)\n");
            foreach (var v in violations.Take(5))
            {
                b.Append(CultureInfo.InvariantCulture, $"  [{v.Kind}] {v.Message}\n");
            }

            b.Append("kill schedule:\n").Append(plan);
            b.Append("history:\n");
            foreach (var e in history.Events)
            {
                b.Append(e).Append('\n');
            }

            b.Append(CultureInfo.InvariantCulture, $"reproduce: sharerpc chaos --seeds 0 --crash-loops 1 --seed-start {seed}{(postgres is null ? "" : " --store postgres")}\n");
            report = b.ToString();
        }

        return new CrashLoopResult(seed, ops, kills, violations, report, clock.Elapsed) { Store = postgres is null ? "sqlite" : "postgres", OutboxEngine = engine.Name, ServerRestarts = serverRestarts };
    }
}
