using ShareRpc.Server.Apply;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class GroupCommitTests : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    [Fact]
    public async Task A_failing_write_in_a_group_is_rolled_back_alone()
    {
        var (owner, _) = await _f.NewShareAsync();
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = _f.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        var before = _f.Engine.Committer.Commits;

        var first = _f.AppendAsync(owner, "a", Put(1, "d", "a1", "x"), Put(2, "d", "a2", "x"));
        // This one applies a whole batch and then blows up: every row it wrote must vanish.
        var poisoned = _f.Engine.Committer.SubmitAsync<int>(async (tx, ct) =>
        {
            await BatchApplier.ApplyAsync(tx, owner, Batch("b", Put(1, "d", "b1", "x"), Put(2, "d", "b2", "x")), _f.Clock.GetUtcNow(), ct);
            throw new InvalidOperationException("boom after writing");
        });
        var stale = _f.AppendAsync(owner with { Epoch = 99 }, "c", Put(1, "d", "c1", "x")); // fails its checks inside the group
        var last = _f.AppendAsync(owner, "d", Put(1, "d", "d1", "x"));
        gate.SetResult();
        await blocker;

        var a = await first;
        var boom = await Expect.Fails(() => poisoned, ShareRpcStatus.Unavailable, Reasons.Storage);
        Assert.IsType<InvalidOperationException>(boom.InnerException);
        await Expect.Fails(() => stale, ShareRpcStatus.Unauthenticated, Reasons.EpochStale);
        var d = await last;
        Assert.Equal(before + 2, _f.Engine.Committer.Commits);

        // Cursors stay gap-free: the rolled-back batch's cursors were reused by the next batch.
        Assert.Equal([1UL, 2], a.Acks.Select(x => x.Cursor));
        Assert.Equal(3UL, d.Acks[0].Cursor);
        var snap = await _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest());
        Assert.Equal(["a1", "a2", "d1"], snap.Documents.Select(x => x.Key));
        // Producer b's seq was rolled back too: it can start at 1.
        var b = await _f.AppendAsync(owner, "b", Put(1, "d", "b1", "x"));
        Assert.Equal((OpStatus.Applied, 4UL), (b.Acks[0].Status, b.Acks[0].Cursor));
    }

    [Fact]
    public async Task Concurrent_streams_share_commits_and_keep_order_and_atomicity()
    {
        var (owner, _) = await _f.NewShareAsync();
        const int producers = 8, batches = 25, opsPerBatch = 4;
        var before = _f.Engine.Committer.Commits;
        var acks = await Task.WhenAll(Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            // Each producer pipelines: queue all its batches, then collect the acks in order.
            var pending = new List<Task<AppendOpsResponse>>();
            ulong seq = 1;
            for (var b = 0; b < batches; b++)
            {
                var ops = Enumerable.Range(0, opsPerBatch).Select(_ => Put(seq, "d", $"p{p}-{seq++}", "v")).ToArray();
                pending.Add(await _f.Engine.EnqueueAppendAsync(owner, Batch("p" + p, ops)));
            }
            return await Task.WhenAll(pending);
        })));

        var all = acks.SelectMany(x => x).ToList();
        Assert.All(all, r => Assert.Equal(BatchStatus.Accepted, r.BatchStatus));
        Assert.All(all, r => Assert.All(r.Acks, a => Assert.Equal(OpStatus.Applied, a.Status)));
        // Each batch's ops got consecutive cursors (no other batch interleaved inside it).
        Assert.All(all, r => Assert.Equal(Enumerable.Range(0, opsPerBatch).Select(i => r.Acks[0].Cursor + (ulong)i), r.Acks.Select(a => a.Cursor)));
        // All cursors 1..N exactly once.
        const int total = producers * batches * opsPerBatch;
        Assert.Equal(Enumerable.Range(1, total).Select(i => (ulong)i), all.SelectMany(r => r.Acks).Select(a => a.Cursor).Order());
        // Per producer, cursor order equals seq order.
        foreach (var perProducer in acks)
        {
            var cursors = perProducer.SelectMany(r => r.Acks).Select(a => a.Cursor).ToList();
            Assert.Equal(cursors.Order(), cursors);
        }
        var commits = _f.Engine.Committer.Commits - before;
        Assert.InRange(commits, 1, producers * batches);
    }

    [Fact]
    public async Task A_refused_batch_in_the_queue_does_not_stop_a_streams_later_batches()
    {
        var (owner, _) = await _f.NewShareAsync();
        var ok1 = await _f.Engine.EnqueueAppendAsync(owner, Batch("p", Put(1, "d", "a", "1")));
        var gap = await _f.Engine.EnqueueAppendAsync(owner, Batch("p", Put(3, "d", "b", "1")));
        var ok2 = await _f.Engine.EnqueueAppendAsync(owner, Batch("p", Put(2, "d", "c", "1")));
        Assert.Equal(BatchStatus.Accepted, (await ok1).BatchStatus);
        Assert.Equal((BatchStatus.OutOfOrder, 2UL), ((await gap).BatchStatus, (await gap).ExpectedSeq));
        Assert.Equal(2UL, (await ok2).Acks[0].Cursor);
    }
}

public class StorageFailureTests
{
    /// <summary>Wraps a store so that the next commits throw, as on a full disk.</summary>
    private sealed class FailingCommitStore(Storage.IShareStore inner) : Storage.IShareStore
    {
        public int FailNextCommits;

        public async Task<Storage.IShareTransaction> BeginWriteAsync(CancellationToken ct = default)
        {
            var tx = await inner.BeginWriteAsync(ct);
            var proxy = System.Reflection.DispatchProxy.Create<Storage.IShareTransaction, CommitInterceptor>();
            ((CommitInterceptor)(object)proxy).Init(tx, this);
            return proxy;
        }

        public Task<Storage.IShareReader> BeginReadAsync(CancellationToken ct = default) => inner.BeginReadAsync(ct);

        public ValueTask DisposeAsync() => inner.DisposeAsync();

        public class CommitInterceptor : System.Reflection.DispatchProxy
        {
            private Storage.IShareTransaction _inner = null!;
            private FailingCommitStore _owner = null!;

            internal void Init(Storage.IShareTransaction inner, FailingCommitStore owner) => (_inner, _owner) = (inner, owner);

            protected override object? Invoke(System.Reflection.MethodInfo? method, object?[]? args)
            {
                if (method!.Name == nameof(Storage.IShareTransaction.CommitAsync) && Interlocked.Decrement(ref _owner.FailNextCommits) >= 0)
                    return Task.FromException(new IOException("disk full (simulated)"));
                try
                {
                    return method.Invoke(_inner, args);
                }
                catch (System.Reflection.TargetInvocationException e)
                {
                    throw e.InnerException!;
                }
            }
        }
    }

    [Fact]
    public async Task A_failed_commit_fails_its_whole_group_unavailable_applies_nothing_and_the_next_commit_works()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-fail-" + Guid.NewGuid().ToString("N"));
        var store = new FailingCommitStore(Storage.Sqlite.SqliteShareStore.Open(dir));
        await using (var engine = new ShareEngine(store, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), new ShareRpcServerOptions { DataDirectory = dir }))
        {
            var created = await engine.CreateShareAsync(new Sharerpc.V1.CreateShareRequest { ShareKey = "k", OwnerSecret = Google.Protobuf.ByteString.CopyFrom(NewSecret()) }, null, Endpoint);
            var owner = engine.Authenticate("Bearer " + (await engine.RedeemAsync(new Sharerpc.V1.RedeemShareRequest { SturdyRef = created.SturdyRef })).LiveRef);

            store.FailNextCommits = 1;
            var batch = Batch("p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"));
            var e = await Expect.Fails(() => engine.AppendAsync(owner, batch), ShareRpcStatus.Unavailable, Reasons.Storage);
            Assert.IsType<IOException>(e.InnerException);

            // Nothing was applied; the same batch resent is applied from cursor 1, and the committer lives on.
            var ack = await engine.AppendAsync(owner, batch);
            Assert.Equal([Sharerpc.V1.OpStatus.Applied, Sharerpc.V1.OpStatus.Applied], ack.Acks.Select(a => a.Status));
            Assert.Equal([1UL, 2], ack.Acks.Select(a => a.Cursor));
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(dir, true);
    }
}
