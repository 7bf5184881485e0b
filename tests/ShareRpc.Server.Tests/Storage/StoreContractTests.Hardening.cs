using ShareRpc.Server.Storage;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests.Stores;

/// <summary>
/// The store contract's part in issue 13 (hardening), on every store: reads stop a chunk by bytes,
/// never by count alone (docs/design.md, "Limits"); a producer belongs to the capability that
/// writes it (docs/design.md, "AppendOps semantics").
/// </summary>
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

    [Fact]
    public async Task A_producer_belongs_to_the_capability_that_first_wrote_it_another_learns_nothing_of_its_seq()
    {
        var (owner, _) = await F.NewShareAsync();
        var delegated = await F.Engine.DelegateAsync(owner, new DelegateCapabilityRequest
        {
            Rights = { Right.Append },
            Secret = Google.Protobuf.ByteString.CopyFrom(NewSecret()),
        }, Endpoint);
        var appendOnly = await F.RedeemAsync(delegated.SturdyRef);
        await F.AppendAsync(owner, "owner-producer", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"), Put(3, "d", "c", "1"));

        // Far ahead (the old server answered OUT_OF_ORDER with expected_seq = 4) and right on (it applied it).
        foreach (var seq in new ulong[] { 10, 4 })
        {
            var e = await Expect.Fails(() => F.AppendAsync(appendOnly, "owner-producer", Put(seq, "d", "hijack", "x")), ShareRpcStatus.PermissionDenied, Reasons.ProducerTaken);
            Assert.DoesNotContain("4", e.Message); // nothing of the owner's sequence
        }

        // The owner's producer goes on where it was; the delegate writes under its own producer id.
        var next = await F.AppendAsync(owner, "owner-producer", Put(4, "d", "e", "1"));
        Assert.Equal((BatchStatus.Accepted, OpStatus.Applied, 4UL), (next.BatchStatus, next.Acks[0].Status, next.Acks[0].Cursor));
        var own = await F.AppendAsync(appendOnly, "delegate-producer", Put(1, "d", "f", "1"));
        Assert.Equal(OpStatus.Applied, own.Acks[0].Status);
        await Expect.Fails(() => F.AppendAsync(owner, "delegate-producer", Put(2, "d", "g", "1")), ShareRpcStatus.PermissionDenied, Reasons.ProducerTaken);

        await using var view = await F.Engine.Store.BeginReadAsync();
        var share = (await view.GetShareAsync(owner.ShareId))!;
        Assert.Equal(5UL, share.Cursor);
        Assert.DoesNotContain(await view.ReadLogAsync(share.RowId, 1, 100), e => e.Key is "hijack" or "g");
    }
}
