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
