using ShareRpc.Server.Storage;
using ShareRpc.Server.Storage.Sqlite;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

/// <summary>
/// The group committer's answer to a transient store error (a deadlock or uniqueness race with
/// another server on a shared database): the whole group runs again, and each write's result is
/// released once, from the attempt that committed. Here the "race" is injected into the SQLite
/// store, so the behaviour is checked independently of PostgreSQL.
/// </summary>
public class CommitRetryTests
{
    private sealed class RaceLost() : Exception("injected: lost a race with another server");

    /// <summary>SQLite, except that <see cref="RaceLost"/> counts as transient.</summary>
    private sealed class RacyStore(IShareStore inner) : IShareStore
    {
        public Task<IShareTransaction> BeginWriteAsync(CancellationToken ct = default) => inner.BeginWriteAsync(ct);
        public Task<IShareReader> BeginReadAsync(CancellationToken ct = default) => inner.BeginReadAsync(ct);
        public bool IsTransient(Exception error) => error is RaceLost;
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private static Task<EngineFixture> OpenAsync(int maxAttempts) =>
        EngineFixture.OpenAsync(() => Task.FromResult<IShareStore>(new RacyStore(SqliteShareStore.Open(Path.Combine(Path.GetTempPath(), "sharerpc-retry-" + Guid.NewGuid().ToString("N"))))),
            o => o.MaxCommitAttempts = maxAttempts);

    [Fact]
    public async Task A_transient_error_reruns_the_whole_group_and_every_write_lands_once()
    {
        await using var f = await OpenAsync(maxAttempts: 4);
        var (owner, _) = await f.NewShareAsync();
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = f.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;
        var commits = f.Engine.Committer.Commits;

        // One group: a batch, a write that loses two races, another batch.
        var runs = 0;
        var first = f.AppendAsync(owner, "a", Put(1, "d", "a1", "x"), Put(2, "d", "a2", "x"));
        var racy = f.Engine.Committer.SubmitAsync((tx, ct) => ++runs <= 2 ? throw new RaceLost() : Task.FromResult(runs));
        var last = f.AppendAsync(owner, "b", Put(1, "d", "b1", "x"));
        gate.SetResult();
        await blocker;

        Assert.Equal(3, await racy);
        Assert.Equal([1UL, 2UL], (await first).Acks.Select(a => a.Cursor));
        Assert.Equal((OpStatus.Applied, 3UL), ((await last).Acks[0].Status, (await last).Acks[0].Cursor));
        Assert.Equal(2, f.Engine.Committer.Retries);
        Assert.Equal(commits + 2, f.Engine.Committer.Commits); // the blocker's group, then the retried one: one commit

        var snap = await f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest());
        Assert.Equal(3UL, snap.Cursor); // the reruns left no trace: three ops, once each
        Assert.Equal(["a1", "a2", "b1"], snap.Documents.Select(d => d.Key));
    }

    [Fact]
    public async Task After_MaxCommitAttempts_the_group_fails_unavailable_and_nothing_of_it_is_applied()
    {
        await using var f = await OpenAsync(maxAttempts: 3);
        var (owner, _) = await f.NewShareAsync();
        var gate = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var blocker = f.Engine.Committer.SubmitAsync(async (tx, ct) => { started.SetResult(); await gate.Task; return 0; });
        await started.Task;

        var runs = 0;
        var batch = f.AppendAsync(owner, "a", Put(1, "d", "a1", "x"));
        var racy = f.Engine.Committer.SubmitAsync<int>((tx, ct) => { runs++; throw new RaceLost(); });
        gate.SetResult();
        await blocker;

        var e = await Expect.Fails(() => batch, ShareRpcStatus.Unavailable, Reasons.Storage);
        Assert.IsType<RaceLost>(e.InnerException);
        await Expect.Fails(() => racy, ShareRpcStatus.Unavailable, Reasons.Storage);
        Assert.Equal(3, runs);

        // Nothing was applied, so the client's retry applies the batch at cursor 1.
        var retry = await f.AppendAsync(owner, "a", Put(1, "d", "a1", "x"));
        Assert.Equal((OpStatus.Applied, 1UL), (retry.Acks[0].Status, retry.Acks[0].Cursor));
    }
}
