using System.Globalization;
using System.Text;
using Google.Protobuf;
using Sharerpc.V1;

namespace ShareRpc.Chaos.Scenarios;

/// <summary>Sizes and mix of the generated workloads (a user's knobs; docs/chaos.md).</summary>
public sealed class WorkloadOptions
{
    public int MinShares { get; set; } = 1;
    public int MaxShares { get; set; } = 2;

    /// <summary>Producers per share (the first writes with the owner ref, the others with delegated refs).</summary>
    public int MinProducers { get; set; } = 1;
    public int MaxProducers { get; set; } = 3;

    public int MinOpsPerProducer { get; set; } = 4;
    public int MaxOpsPerProducer { get; set; } = 16;

    /// <summary>Subscribers per share (one of them starts with a snapshot).</summary>
    public int MaxSubscribers { get; set; } = 2;

    /// <summary>Chance that a share sees a revocation (one delegated producer, or all of them) mid-stream.</summary>
    public double RevokeRate { get; set; } = 0.3;

    /// <summary>Chance that a share has a reader on a delegated READ capability that is revoked halfway (the Subscribe fence).</summary>
    public double RevokedReaderRate { get; set; } = 0.3;

    /// <summary>Chance that an op carries expected_version (a put or delete), and that one depends_on an earlier op.</summary>
    public double ExpectedVersionRate { get; set; } = 0.2;
    public double DependsOnRate { get; set; } = 0.2;

    /// <summary>Distinct keys per collection (few keys: many version conflicts and tombstones).</summary>
    public int Keys { get; set; } = 4;

    /// <summary>Largest batch the producers' outboxes seal (each producer draws 1..this).</summary>
    public int MaxBatchOps { get; set; } = 6;
}

public enum OpKindSpec
{
    Put,
    Delete,
    Append,
}

/// <summary>One op of a producer: everything fixed by the seed, its op id included.</summary>
public sealed record OpSpec(int Index, string OpId, OpKindSpec Kind, string Collection, string Key, string Value, ulong? ExpectedVersion, IReadOnlyList<string> DependsOn, int PauseMs)
{
    public Op ToProto()
    {
        var op = new Op { OpId = OpId };
        op.DependsOn.AddRange(DependsOn);
        switch (Kind)
        {
            case OpKindSpec.Put:
                op.Put = new Put { Collection = Collection, Key = Key, Value = ByteString.CopyFromUtf8(Value), ContentType = "text/plain" };
                if (ExpectedVersion is { } pv)
                {
                    op.Put.ExpectedVersion = pv;
                }

                break;
            case OpKindSpec.Delete:
                op.Delete = new Delete { Collection = Collection, Key = Key };
                if (ExpectedVersion is { } dv)
                {
                    op.Delete.ExpectedVersion = dv;
                }

                break;
            default:
                op.Append = new Append { Collection = Collection, Value = ByteString.CopyFromUtf8(Value), ContentType = "text/plain" };
                break;
        }

        return op;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{OpId} {Kind.ToString().ToLowerInvariant()} {Collection}/{Key}{(ExpectedVersion is { } v ? $" ev={v}" : "")}{(DependsOn.Count > 0 ? " after " + string.Join(",", DependsOn) : "")}");
}

/// <summary>A producer: one client, one outbox, one share; <see cref="RevokeAfterOp"/> = its capability is revoked once that op is enqueued.</summary>
public sealed record ProducerSpec(string Name, int Share, bool Owner, int MaxBatchOps, IReadOnlyList<OpSpec> Ops, int? RevokeAfterOp);

/// <summary>
/// A share; <see cref="RevokeAllAfter"/> = (producer, op): the owner revokes every delegated capability then;
/// <see cref="RevokedReader"/>: a subscriber on a delegated READ capability, revoked when the owner's producer is halfway.
/// </summary>
public sealed record ShareSpec(int Index, string Name, IReadOnlyList<string> Subscribers, (string Producer, int Op)? RevokeAllAfter, string? RevokedReader = null);

/// <summary>The workload of one seed.</summary>
public sealed record WorkloadSpec(int Seed, IReadOnlyList<ShareSpec> Shares, IReadOnlyList<ProducerSpec> Producers)
{
    public int OpCount => Producers.Sum(p => p.Ops.Count);

    /// <summary>Draws the workload of <paramref name="seed"/>.</summary>
    public static WorkloadSpec Generate(int seed, Random r, WorkloadOptions o)
    {
        var shares = new List<ShareSpec>();
        var producers = new List<ProducerSpec>();
        var nShares = r.Next(o.MinShares, o.MaxShares + 1);
        for (var s = 0; s < nShares; s++)
        {
            var nProducers = r.Next(o.MinProducers, o.MaxProducers + 1);
            var mine = new List<ProducerSpec>();
            for (var p = 0; p < nProducers; p++)
            {
                var name = $"s{s}.p{p}";
                var nOps = r.Next(o.MinOpsPerProducer, o.MaxOpsPerProducer + 1);
                var ops = new List<OpSpec>();
                for (var i = 0; i < nOps; i++)
                {
                    var id = string.Create(CultureInfo.InvariantCulture, $"{seed}.{name}.{i:D3}");
                    var roll = r.NextDouble();
                    var kind = roll < 0.5 ? OpKindSpec.Put : roll < 0.65 ? OpKindSpec.Delete : OpKindSpec.Append;
                    var collection = kind == OpKindSpec.Append ? "events" : "docs";
                    var key = kind == OpKindSpec.Append ? "" : "k" + r.Next(o.Keys).ToString(CultureInfo.InvariantCulture);
                    ulong? ev = kind != OpKindSpec.Append && r.NextDouble() < o.ExpectedVersionRate ? (ulong)r.Next(0, 4) : null;
                    var deps = new List<string>();
                    if (r.NextDouble() < o.DependsOnRate)
                    {
                        var which = r.Next(10);
                        if (which < 6 && i > 0)
                        {
                            deps.Add(ops[r.Next(i)].OpId); // an earlier op of this producer
                        }
                        else if (which < 8 && mine.Count > 0)
                        {
                            var other = mine[r.Next(mine.Count)];
                            deps.Add(other.Ops[r.Next(other.Ops.Count)].OpId); // another producer's: a race
                        }
                        else
                        {
                            deps.Add(string.Create(CultureInfo.InvariantCulture, $"{seed}.ghost.{i}")); // never enqueued
                        }
                    }

                    var value = string.Create(CultureInfo.InvariantCulture, $"{name}#{i}:{r.Next(1_000_000)}");
                    var pause = r.NextDouble() < 0.2 ? r.Next(1, 8) : 0;
                    ops.Add(new OpSpec(i, id, kind, collection, key, value, ev, deps, pause));
                }

                var revokeAfter = p > 0 && r.NextDouble() < o.RevokeRate ? r.Next(nOps) : (int?)null;
                mine.Add(new ProducerSpec(name, s, p == 0, r.Next(1, o.MaxBatchOps + 1), ops, revokeAfter));
            }

            (string, int)? revokeAll = null;
            if (nProducers > 1 && r.NextDouble() < o.RevokeRate / 3)
            {
                var who = mine[r.Next(nProducers)];
                revokeAll = (who.Name, r.Next(who.Ops.Count));
            }

            var subs = Enumerable.Range(0, r.Next(1, Math.Max(1, o.MaxSubscribers) + 1)).Select(i => $"s{s}.r{i}").ToList();
            var reader = r.NextDouble() < o.RevokedReaderRate ? $"s{s}.x0" : null;
            shares.Add(new ShareSpec(s, $"share{s}", subs, revokeAll, reader));
            producers.AddRange(mine);
        }

        return new WorkloadSpec(seed, shares, producers);
    }

    public override string ToString()
    {
        var b = new StringBuilder();
        foreach (var s in Shares)
        {
            b.Append(CultureInfo.InvariantCulture, $"  {s.Name}: subscribers {string.Join(",", s.Subscribers)}{(s.RevokedReader is { } x ? $", reader {x} revoked halfway" : "")}{(s.RevokeAllAfter is { } ra ? $", revoke-all after {ra.Producer} op {ra.Op}" : "")}\n");
            foreach (var p in Producers.Where(p => p.Share == s.Index))
            {
                b.Append(CultureInfo.InvariantCulture, $"    {p.Name}: {(p.Owner ? "owner" : "delegated")}, {p.Ops.Count} ops, batches <= {p.MaxBatchOps}{(p.RevokeAfterOp is { } k ? $", revoked after op {k}" : "")}\n");
            }
        }

        return b.ToString();
    }
}
