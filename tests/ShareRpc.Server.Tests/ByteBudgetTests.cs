using ShareRpc.Server.Apply;

namespace ShareRpc.Server.Tests;

/// <summary>The byte gate every bounded buffer waits on (docs/design.md, "Limits").</summary>
public sealed class ByteBudgetTests
{
    [Fact]
    public async Task Takers_that_do_not_fit_wait_first_come_first_served_and_a_small_one_does_not_jump_the_line()
    {
        var budget = new ByteBudget(10, "test");
        await budget.AcquireAsync(8);
        var big = budget.AcquireAsync(5).AsTask();
        var small = budget.AcquireAsync(1).AsTask(); // would fit, but the big one is first in line
        Assert.False(big.IsCompleted);
        Assert.False(small.IsCompleted);
        Assert.Equal(2, budget.Waiting);

        budget.Release(8);
        await big;
        await small;
        Assert.Equal((6L, 8L), (budget.InUse, budget.Peak));
    }

    [Fact]
    public async Task One_taker_larger_than_the_whole_budget_goes_through_alone()
    {
        var budget = new ByteBudget(10, "test");
        await budget.AcquireAsync(2);
        var huge = budget.AcquireAsync(25).AsTask();
        Assert.False(huge.IsCompleted);
        budget.Release(2);
        await huge;
        Assert.Equal(25, budget.InUse);
        Assert.False(budget.TryAcquire(1));
    }

    [Fact]
    public async Task A_cancelled_taker_leaves_the_line_and_the_next_one_gets_in()
    {
        var budget = new ByteBudget(10, "test");
        await budget.AcquireAsync(6);
        using var cts = new CancellationTokenSource();
        var cancelled = budget.AcquireAsync(8, cts.Token).AsTask();
        var next = budget.AcquireAsync(4).AsTask();
        Assert.False(next.IsCompleted); // behind the 8
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        await next;
        Assert.Equal(10, budget.InUse);
        Assert.Equal(0, budget.Waiting);
    }

    [Fact]
    public async Task A_parent_counts_what_its_children_hold_and_wait_for_without_gating()
    {
        var all = new ByteBudget(long.MaxValue, "all");
        var a = new ByteBudget(4, "a", all);
        var b = new ByteBudget(4, "b", all);
        await a.AcquireAsync(3);
        await b.AcquireAsync(4);
        var waiting = a.AcquireAsync(3).AsTask();
        Assert.Equal((7L, 1), (all.InUse, all.Waiting));
        a.Release(3);
        await waiting;
        b.Release(4);
        Assert.Equal((3L, 0, 7L), (all.InUse, all.Waiting, all.Peak));
    }
}

/// <summary>The write queue's gate: shares take turns, by bytes (deficit round robin).</summary>
public sealed class FairByteBudgetTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task A_shares_small_write_passes_other_shares_large_ones_that_came_first()
    {
        var budget = new FairByteBudget(8 * MiB, "queue");
        await budget.AcquireAsync(8 * MiB, "flood-0"); // full
        var floods = Enumerable.Range(1, 8).Select(i => budget.AcquireAsync(3 * MiB, "flood-" + i)).ToList();
        var honest = budget.AcquireAsync(1024, "honest");
        Assert.Equal(9, budget.Waiting);

        budget.Release(3 * MiB); // the batch whose turn it is (and waits for room) goes first: flood-1
        budget.Release(3 * MiB); // then the small write, before the seven other floods' batches
        await honest.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, floods.Count(f => f.IsCompleted)); // first come, first served: two floods in, the honest write eighth in line

        budget.Release(budget.InUse);
        Assert.Equal(3, floods.Count(f => f.IsCompleted)); // nobody starves: the large ones go in as room comes
        Assert.True(budget.Peak <= 8 * MiB + 1024);
    }

    [Fact]
    public async Task One_shares_writes_are_let_in_in_the_order_they_came()
    {
        var budget = new FairByteBudget(4, "queue");
        await budget.AcquireAsync(4, "a");
        var first = budget.AcquireAsync(3, "b");
        var second = budget.AcquireAsync(1, "b"); // fits sooner, but comes after b's first
        budget.Release(1);
        Assert.False(second.IsCompleted);
        budget.Release(3);
        await first.WaitAsync(TimeSpan.FromSeconds(10));
        await second.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_cancelled_waiter_leaves_its_share_and_the_line_moves_on()
    {
        var budget = new FairByteBudget(4, "queue");
        await budget.AcquireAsync(4, "a");
        using var cts = new CancellationTokenSource();
        var cancelled = budget.AcquireAsync(4, "b", cts.Token);
        var next = budget.AcquireAsync(2, "c");
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        budget.Release(4);
        await next.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((2L, 0), (budget.InUse, budget.Waiting));
    }
}

/// <summary>The group committer's turns: by cost (bytes, or ops weighed), shares in turn, one share's writes in order.</summary>
public sealed class ShareTurnsTests
{
    private sealed record Write(string Share, long Bytes, int Ops, int Index);

    [Fact]
    public void A_shares_light_writes_go_between_another_shares_heavy_ones_and_each_shares_order_holds()
    {
        var turns = new ShareTurns<Write>(w => w.Share, w => w.Bytes, w => w.Ops);
        for (var i = 0; i < 4; i++) turns.Add(new Write("flood", 3L << 20, 3, i));
        for (var i = 0; i < 4; i++) turns.Add(new Write("honest", 1024, 1, i));
        var order = new List<Write>();
        while (turns.TryTake(_ => true, out var w)) order.Add(w);

        Assert.Equal(8, order.Count);
        Assert.Equal([0, 1, 2, 3], order.Where(w => w.Share == "flood").Select(w => w.Index));
        Assert.Equal([0, 1, 2, 3], order.Where(w => w.Share == "honest").Select(w => w.Index));
        // The honest share's four light writes all come before the flood's second 3 MiB write.
        Assert.True(order.FindLastIndex(w => w.Share == "honest") < order.FindIndex(w => w.Share == "flood" && w.Index == 1));
    }

    [Fact]
    public void The_write_whose_turn_it_is_and_does_not_fit_goes_first_next_time()
    {
        var turns = new ShareTurns<Write>(w => w.Share, w => w.Bytes, w => w.Ops);
        turns.Add(new Write("a", 100, 1, 0));
        Assert.False(turns.TryTake(_ => false, out _));
        Assert.Equal(1, turns.Count);
        turns.Add(new Write("b", 1, 1, 0));
        Assert.True(turns.TryTake(_ => true, out var first));
        Assert.Equal("a", first.Share);
        Assert.Equal(1024 * ShareTurns<Write>.CostPerOp, turns.CostOf(new Write("c", 10, 1024, 0))); // ops weigh when they cost more than the bytes
    }
}
