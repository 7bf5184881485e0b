using ShareRpc.Server.Storage;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>The store contract's byte bounds on reads (docs/design.md, "Limits"): both stores stop a chunk by bytes, never by count alone.</summary>
public abstract partial class StoreContractTests
{
    [Fact]
    public async Task Reads_stop_before_the_entry_that_would_pass_max_bytes_and_always_give_the_first()
    {
        var (owner, _) = await F.NewShareAsync();
        var value = new string('v', 1000);
        for (ulong i = 1; i <= 6; i++)
            await F.AppendAsync(owner, "p", Put(i, "d", "k" + i, value));
        await using var view = await F.Engine.Store.BeginReadAsync();
        var share = (await view.GetShareAsync(owner.ShareId))!;
        var all = await view.ReadLogAsync(share.RowId, 1, 100);
        var sizes = all.Select(e => StoredBytes.Of(e)).ToList();
        Assert.All(sizes, s => Assert.True(s > 1000)); // the value and its ids

        // Room for exactly three entries, one byte short of a fourth.
        var three = sizes.Take(3).Sum();
        Assert.Equal([1UL, 2UL, 3UL], (await view.ReadLogAsync(share.RowId, 1, 100, three + sizes[3] - 1)).Select(e => e.Cursor));
        Assert.Equal([1UL, 2UL, 3UL, 4UL], (await view.ReadLogAsync(share.RowId, 1, 100, three + sizes[3])).Select(e => e.Cursor));
        Assert.Equal([1UL], (await view.ReadLogAsync(share.RowId, 1, 100, 1)).Select(e => e.Cursor)); // never empty while entries remain
        Assert.Equal(value.Length, (await view.ReadLogAsync(share.RowId, 5, 100, 1))[0].Value!.Length);
        Assert.Equal(2, (await view.ReadLogAsync(share.RowId, 1, 2)).Count); // the count still bounds it

        var docs = await view.ReadDocumentsAsync(share.RowId, null, null, 100);
        var docSizes = docs.Select(d => StoredBytes.Of(d)).ToList();
        var two = docSizes.Take(2).Sum();
        Assert.Equal(["k1", "k2"], (await view.ReadDocumentsAsync(share.RowId, null, null, 100, two + docSizes[2] - 1)).Select(d => d.Key));
        Assert.Equal(["k2"], (await view.ReadDocumentsAsync(share.RowId, "d", ("d", "k1"), 100, 1)).Select(d => d.Key));
        Assert.True(await view.HasDocumentsAfterAsync(share.RowId, null, ("d", "k5")));
        Assert.False(await view.HasDocumentsAfterAsync(share.RowId, null, ("d", "k6")));
        Assert.False(await view.HasDocumentsAfterAsync(share.RowId, "c", ("c", "")));
        Assert.True(await view.HasDocumentsAfterAsync(share.RowId, "d", ("d", "")));
    }
}
