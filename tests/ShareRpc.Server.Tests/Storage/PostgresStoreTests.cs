using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using ShareRpc.Server.Postgres;
using ShareRpc.Server.Storage;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>
/// What only a shared database has: several engines (server processes) on ONE PostgreSQL database,
/// the LISTEN/NOTIFY change feed, migration races, DI registration.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresStoreTests(PostgresFixture pg) : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(20);
    private readonly string _keyDir = Path.Combine(Path.GetTempPath(), "sharerpc-pg-nodes-" + Guid.NewGuid().ToString("N"));
    private readonly List<IAsyncDisposable> _owned = new();
    private string _cs = "";

    public async Task InitializeAsync()
    {
        _cs = await pg.Server.CreateDatabaseAsync("pgstore");
        Directory.CreateDirectory(_keyDir);
    }

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
        await pg.Server.DropDatabaseAsync(_cs);
        try { Directory.Delete(_keyDir, true); } catch (IOException) { }
    }

    private async Task<PostgresShareStore> OpenStoreAsync(Action<PostgresStoreOptions>? configure = null)
    {
        var o = new PostgresStoreOptions { ConnectionString = _cs };
        configure?.Invoke(o);
        return await PostgresShareStore.OpenAsync(o);
    }

    /// <summary>A "server process": its own store (own pools, own LISTEN) on the shared database, the shared live-ref key.</summary>
    private async Task<ShareEngine> NodeAsync(Action<ShareRpcServerOptions>? configure = null)
    {
        var options = new ShareRpcServerOptions { DataDirectory = _keyDir };
        configure?.Invoke(options);
        var engine = new ShareEngine(await OpenStoreAsync(), options.LoadServerKey(), options);
        _owned.Add(engine);
        return engine;
    }

    private static async Task<(string ShareId, string SturdyRef)> CreateAsync(ShareEngine e, string key, byte[] secret)
    {
        var r = await e.CreateShareAsync(new CreateShareRequest { ShareKey = key, OwnerSecret = ByteString.CopyFrom(secret) }, null, Endpoint);
        return (r.ShareId, r.SturdyRef);
    }

    private static async Task<Capabilities.LiveRefClaims> RedeemAsync(ShareEngine e, string sturdyRef) =>
        e.Authenticate("Bearer " + (await e.RedeemAsync(new RedeemShareRequest { SturdyRef = sturdyRef })).LiveRef);

    private static async Task Until(Func<bool> condition, string what)
    {
        using var cts = new CancellationTokenSource(s_patience);
        while (!condition())
        {
            try { await Task.Delay(10, cts.Token); }
            catch (OperationCanceledException) { Assert.Fail($"timed out after {s_patience.TotalSeconds} s waiting for {what}"); }
        }
    }

    private async Task<long> ScalarAsync(string sql)
    {
        await using var c = new NpgsqlConnection(_cs);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, c);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    // ------------------------------------------------------------------ several nodes, one database

    [Fact]
    public async Task Two_nodes_appending_to_one_share_apply_every_op_exactly_once_with_dense_cursors_in_producer_order()
    {
        var a = await NodeAsync();
        var b = await NodeAsync();
        var (_, sturdy) = await CreateAsync(a, "shared", NewSecret());
        var owner = await RedeemAsync(a, sturdy);
        ShareEngine[] nodes = [a, b];
        const int producers = 4, batches = 20, opsPerBatch = 8;

        var resentAgreed = 0;
        await Task.WhenAll(Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            ulong seq = 0;
            for (var i = 0; i < batches; i++)
            {
                var ops = Enumerable.Range(0, opsPerBatch).Select(_ => i % 2 == 0 ? Put(++seq, "c", $"p{p}-{seq % 5}", $"{seq}") : AppendOp(++seq, "log", $"p{p}-{seq}")).ToArray();
                var batch = Batch("prod" + p, ops);
                if (i % 5 == 4)
                {
                    // A resend racing the original on the other node: one applies, the other sees duplicates of it.
                    var both = await Task.WhenAll(a.AppendAsync(owner, batch), b.AppendAsync(owner, batch));
                    Assert.Equal(both[0].Acks.Select(x => x.Cursor), both[1].Acks.Select(x => x.Cursor));
                    var statuses = both.SelectMany(r => r.Acks.Select(x => x.Status)).ToList();
                    Assert.Equal(opsPerBatch, statuses.Count(s => s == OpStatus.Applied));
                    Assert.Equal(opsPerBatch, statuses.Count(s => s == OpStatus.Duplicate));
                    Interlocked.Increment(ref resentAgreed);
                }
                else
                {
                    var r = await nodes[(p + i) % 2].AppendAsync(owner, batch);
                    Assert.Equal(BatchStatus.Accepted, r.BatchStatus);
                    Assert.All(r.Acks, x => Assert.Equal(OpStatus.Applied, x.Status));
                }
            }
        })));

        const int total = producers * batches * opsPerBatch;
        Assert.Equal(producers * (batches / 5), resentAgreed);
        await using var store = await OpenStoreAsync();
        await using var view = await store.BeginReadAsync();
        var share = (await view.GetShareAsync(owner.ShareId))!;
        Assert.Equal((ulong)total, share.Cursor);
        var log = await view.ReadLogAsync(share.RowId, 1, total + 10);
        Assert.Equal(Enumerable.Range(1, total).Select(i => (ulong)i), log.Select(e => e.Cursor));
        Assert.Equal(total, log.Select(e => e.OpId).Distinct().Count());
        foreach (var perProducer in log.GroupBy(e => e.ProducerId))
            Assert.Equal(Enumerable.Range(1, batches * opsPerBatch).Select(i => (ulong)i), perProducer.Select(e => e.Seq));
        // Document versions count every applied op on the key, across both nodes.
        var docs = await view.ReadDocumentsAsync(share.RowId, "c", null, 1000);
        var putsPerKey = log.Where(e => e.Kind == OpKind.Put).GroupBy(e => e.Key).ToDictionary(g => g.Key, g => (ulong)g.Count());
        Assert.All(docs, d => Assert.Equal(putsPerKey[d.Key], d.Version));
    }

    [Fact]
    public async Task Two_nodes_racing_CreateShare_of_one_key_make_one_share()
    {
        var a = await NodeAsync();
        var b = await NodeAsync();
        const int keys = 12;
        for (var k = 0; k < keys; k++)
        {
            var secret = NewSecret();
            var req = new CreateShareRequest { ShareKey = "race-" + k, OwnerSecret = ByteString.CopyFrom(secret) };
            var both = await Task.WhenAll(
                Task.Run(() => a.CreateShareAsync(req, null, Endpoint)),
                Task.Run(() => b.CreateShareAsync(req, null, Endpoint)));
            Assert.Equal(both[0].ShareId, both[1].ShareId);
            Assert.Equal(both[0].SturdyRef, both[1].SturdyRef);
            Assert.Equal(1, both.Count(r => r.Created));
        }
        Assert.Equal(keys, await ScalarAsync("SELECT count(*) FROM sharerpc.shares"));
        Assert.Equal(keys, await ScalarAsync("SELECT count(*) FROM sharerpc.capabilities"));
    }

    [Fact]
    public async Task A_revoke_committed_on_one_node_fences_appends_on_another()
    {
        var a = await NodeAsync();
        var b = await NodeAsync();
        var (_, sturdy) = await CreateAsync(a, "fence", NewSecret());
        var owner = await RedeemAsync(a, sturdy);
        var req = new DelegateCapabilityRequest { Secret = ByteString.CopyFrom(NewSecret()) };
        req.Rights.Add(Right.Append);
        var child = await RedeemAsync(b, (await a.DelegateAsync(owner, req, Endpoint)).SturdyRef);
        Assert.Equal(OpStatus.Applied, (await b.AppendAsync(child, Batch("c", Put(1, "d", "k", "v")))).Acks[0].Status);

        var revoked = await a.RevokeAsync(owner, new RevokeCapabilityRequest { All = true });
        Assert.Equal(2UL, revoked.Epoch);

        // B learns nothing in memory first: the check is inside B's transaction, under the share row lock.
        await Expect.Fails(() => b.AppendAsync(child, Batch("c", Put(2, "d", "k", "w"))), ShareRpcStatus.PermissionDenied, "revoked");
        await Expect.Fails(() => b.AppendAsync(owner, Batch("o", Put(1, "d", "k", "w"))), ShareRpcStatus.Unauthenticated, "epoch-stale");
        var fresh = await RedeemAsync(b, sturdy);
        Assert.Equal(2UL, fresh.Epoch);
        Assert.Equal(2UL, (await b.AppendAsync(fresh, Batch("o", Put(1, "d", "k", "w")))).Acks[0].Cursor);
    }

    // ------------------------------------------------------------------ the change feed

    [Fact]
    public async Task A_commit_on_node_A_wakes_a_subscriber_on_node_B()
    {
        var a = await NodeAsync();
        var b = await NodeAsync(o => o.HeartbeatInterval = TimeSpan.FromHours(1)); // only a notification can wake B
        var (shareId, sturdy) = await CreateAsync(a, "feed", NewSecret());
        var onA = await RedeemAsync(a, sturdy);
        var onB = await RedeemAsync(b, sturdy);
        using var cts = new CancellationTokenSource(s_patience);
        await using var sub = b.SubscribeAsync(onB, new SubscribeRequest { FromCursor = 1 }, cts.Token).GetAsyncEnumerator(cts.Token);

        await a.AppendAsync(onA, Batch("p", Put(1, "d", "x", "1")));
        Assert.True(await sub.MoveNextAsync());
        Assert.Equal(1UL, sub.Current.Op.Cursor);

        // B itself committed nothing: its notifier learns cursor 2 only from A's NOTIFY.
        var next = sub.MoveNextAsync().AsTask();
        await a.AppendAsync(onA, Batch("p", Put(2, "d", "y", "2")));
        await Until(() => b.Notifier.Find(shareId)?.Cursor == 2, "node B's notifier to hear of cursor 2");
        Assert.True(await next);
        Assert.Equal((2UL, "y"), (sub.Current.Op.Cursor, sub.Current.Op.Op.Put.Key));

        // A revoke on A ends B's stream (the fence travels by NOTIFY too).
        await a.RevokeAsync(onA, new RevokeCapabilityRequest { All = true });
        await Until(() => b.Notifier.Find(shareId)?.Epoch == 2, "node B to hear of epoch 2");
        var end = await Assert.ThrowsAsync<ShareRpcException>(async () => await sub.MoveNextAsync());
        Assert.Equal("epoch-stale", end.Reason);
    }

    [Fact]
    public async Task The_feed_reports_a_reconnect_after_its_connection_is_killed_and_keeps_delivering()
    {
        var writer = await NodeAsync();
        var (shareId, sturdy) = await CreateAsync(writer, "listen", NewSecret());
        var owner = await RedeemAsync(writer, sturdy);

        var feedStore = await OpenStoreAsync(o => o.ListenReconnectMinDelay = TimeSpan.FromMilliseconds(20));
        _owned.Add(feedStore);
        var changes = Channel.CreateUnbounded<ShareChange>();
        using var stop = new CancellationTokenSource();
        var run = feedStore.RunAsync(c => changes.Writer.TryWrite(c), stop.Token);

        async Task<ShareChange> NextAsync(Func<ShareChange, bool> wanted, string what)
        {
            using var cts = new CancellationTokenSource(s_patience);
            try
            {
                while (true)
                {
                    var c = await changes.Reader.ReadAsync(cts.Token);
                    if (wanted(c)) return c;
                }
            }
            catch (OperationCanceledException) { throw new TimeoutException("no change feed event: " + what); }
        }

        Assert.Null((await NextAsync(_ => true, "the first connect")).ShareId);
        await writer.AppendAsync(owner, Batch("p", Put(1, "d", "k", "v")));
        Assert.Equal(new ShareChange(shareId, 1, 1), await NextAsync(c => c.ShareId == shareId, "the first commit"));

        // Kill every LISTEN connection on this database (the writer node's too).
        var killed = await ScalarAsync(
            $"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND application_name = '{PostgresShareStore.ListenApplicationName}'");
        Assert.True(killed >= 1);
        await NextAsync(c => c.ShareId is null, "the reconnect's catch-up signal");
        Assert.True(feedStore.ListenFailures >= 1);
        Assert.True(feedStore.ListenConnects >= 2);

        await writer.AppendAsync(owner, Batch("p", Put(2, "d", "k", "w")));
        Assert.Equal(new ShareChange(shareId, 2, 1), await NextAsync(c => c.ShareId == shareId, "a commit after the reconnect"));
        await writer.RevokeAsync(owner, new RevokeCapabilityRequest { All = true });
        Assert.Equal(new ShareChange(shareId, 2, 2), await NextAsync(c => c.ShareId == shareId, "the revoke's epoch"));

        await stop.CancelAsync();
        await run.WaitAsync(s_patience); // returns (no throw) when cancelled
    }

    [Fact]
    public async Task Nothing_is_notified_for_a_rolled_back_write()
    {
        var writer = await NodeAsync();
        var (shareId, sturdy) = await CreateAsync(writer, "quiet", NewSecret());
        var feedStore = await OpenStoreAsync();
        _owned.Add(feedStore);
        var seen = new ConcurrentQueue<ShareChange>();
        using var stop = new CancellationTokenSource();
        var run = feedStore.RunAsync(seen.Enqueue, stop.Token);
        await Until(() => feedStore.ListenConnects == 1, "the feed to connect");

        await using (var tx = await writer.Store.BeginWriteAsync())
        {
            var share = (await tx.LockShareAsync(shareId))!;
            await tx.SavepointAsync("w0");
            await tx.UpdateShareHeadAsync(share.RowId, share.Epoch, 99);
            await tx.ReleaseSavepointAsync("w0");
            // disposed without commit
        }
        await using (var tx = await writer.Store.BeginWriteAsync())
        {
            var share = (await tx.LockShareAsync(shareId))!;
            await tx.SavepointAsync("w0");
            await tx.UpdateShareHeadAsync(share.RowId, share.Epoch, 98);
            await tx.ReleaseSavepointAsync("w0");
            await tx.SavepointAsync("w1");
            await tx.UpdateShareHeadAsync(share.RowId, share.Epoch, 97);
            await tx.RollbackToSavepointAsync("w1");
            await tx.ReleaseSavepointAsync("w1");
            await tx.CommitAsync();
        }
        await Until(() => seen.Any(c => c.ShareId == shareId), "the committed head");
        Assert.Equal([98UL], seen.Where(c => c.ShareId == shareId).Select(c => c.Cursor));
        await stop.CancelAsync();
        await run;
    }

    // ------------------------------------------------------------------ schema, errors, hosting

    [Fact]
    public async Task Servers_opening_an_empty_database_together_migrate_it_once()
    {
        var stores = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => OpenStoreAsync())));
        foreach (var s in stores) _owned.Add(s);
        Assert.Equal(PostgresShareStore.SchemaVersion, await ScalarAsync("SELECT version FROM sharerpc.schema_version"));
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM sharerpc.schema_version"));
        Assert.Equal(6, await ScalarAsync("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'sharerpc' AND table_name <> 'schema_version'"));
        // The constraints the guarantees rest on exist.
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM pg_constraint WHERE conname = 'log_op' AND contype = 'u'"));
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM pg_constraint WHERE conname = 'log_cursor' AND contype = 'p'"));
    }

    [Fact]
    public async Task Deadlocks_serialization_failures_and_uniqueness_races_are_transient_and_nothing_else_is()
    {
        var store = await OpenStoreAsync();
        _owned.Add(store);
        foreach (var state in new[] { "40001", "40P01", "23505" })
            Assert.True(store.IsTransient(new PostgresException("x", "ERROR", "ERROR", state)), state);
        Assert.True(store.IsTransient(new InvalidOperationException("wrapped", new PostgresException("x", "ERROR", "ERROR", "40P01"))));
        foreach (var state in new[] { "23503", "42P01", "57014", "53300" })
            Assert.False(store.IsTransient(new PostgresException("x", "ERROR", "ERROR", state)), state);
        Assert.False(store.IsTransient(new ShareRpcException(ShareRpcStatus.NotFound, "share-not-found", "x")));

        // A real uniqueness race: a share_key inserted by another session shows up as 23505.
        await using var tx = await store.BeginWriteAsync();
        await tx.InsertShareAsync("s1", "dup", "", new Dictionary<string, string>(), DateTimeOffset.UtcNow);
        var e = await Assert.ThrowsAnyAsync<Exception>(() => tx.InsertShareAsync("s2", "dup", "", new Dictionary<string, string>(), DateTimeOffset.UtcNow));
        Assert.True(store.IsTransient(e));
    }

    [Fact]
    public async Task AddShareRpcPostgres_works_before_or_after_AddShareRpcServer()
    {
        foreach (var postgresFirst in new[] { true, false })
        {
            var services = new ServiceCollection();
            if (postgresFirst) services.AddShareRpcPostgres(_cs);
            services.AddShareRpcServer(o => o.DataDirectory = _keyDir);
            if (!postgresFirst) services.AddShareRpcPostgres(_cs);
            await using var sp = services.BuildServiceProvider();
            var engine = sp.GetRequiredService<ShareEngine>();
            Assert.IsType<PostgresShareStore>(engine.Store);
            Assert.Same(sp.GetRequiredService<IShareStore>(), engine.Store);
            var (shareId, _) = await CreateAsync(engine, "di-" + postgresFirst, NewSecret());
            Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM sharerpc.shares WHERE share_id = '{shareId}'"));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceCollection().AddShareRpcPostgres(o => { o.ConnectionString = _cs; o.MaxPoolSize = 2; }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceCollection().AddShareRpcPostgres(_cs + ";Maximum Pool Size=2"));
        Assert.Equal(7, PostgresStoreOptions.FromConnectionString(_cs + ";Max Pool Size=7").MaxPoolSize);
        Assert.Equal(new PostgresStoreOptions().MaxPoolSize, PostgresStoreOptions.FromConnectionString(_cs).MaxPoolSize);
    }

    [Fact]
    public async Task A_store_keeps_within_MaxPoolSize_connections_under_many_readers()
    {
        var store = await OpenStoreAsync(o => o.MaxPoolSize = 5); // 1 listen + 2 write + 2 read
        _owned.Add(store);
        var options = new ShareRpcServerOptions { DataDirectory = _keyDir };
        var engine = new ShareEngine(store, options.LoadServerKey(), options, ownsStore: false);
        _owned.Add(engine);
        var (_, sturdy) = await CreateAsync(engine, "pool", NewSecret());
        await Until(() => store.ListenConnects == 1, "the feed to connect");
        var peak = 0L;
        await Task.WhenAll(Enumerable.Range(0, 40).Select(async _ =>
        {
            var r = await engine.RedeemAsync(new RedeemShareRequest { SturdyRef = sturdy });
            Assert.Equal(1UL, r.Epoch);
            var n = await ScalarAsync("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'sharerpc%'");
            InterlockedMax(ref peak, n);
        }));
        Assert.InRange(peak, 1, 5);
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long seen;
        while ((seen = Interlocked.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}
