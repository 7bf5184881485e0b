using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

public class ValidationTests : IAsyncLifetime
{
    private EngineFixture _f = null!;

    public Task InitializeAsync()
    {
        _f = new EngineFixture(o =>
        {
            o.Limits.MaxOpsPerBatch = 3;
            o.Limits.MaxValueBytes = 10;
            o.Limits.MaxKeyLength = 8;
            o.Limits.MaxCollectionLength = 6;
            o.Limits.MaxDependsOnPerOp = 2;
            o.Limits.MaxIdLength = 40;
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    public static TheoryData<string, StatusCode, string> Cases => new()
    {
        { "batch_id", StatusCode.InvalidArgument, "batch_id" },
        { "producer_id", StatusCode.InvalidArgument, "producer_id" },
        { "producer_id_long", StatusCode.ResourceExhausted, "producer_id" },
        { "too_many_ops", StatusCode.ResourceExhausted, "ops" },
        { "op_id", StatusCode.InvalidArgument, "ops[1].op_id" },
        { "seq_zero", StatusCode.InvalidArgument, "ops[0].seq" },
        { "seq_not_consecutive", StatusCode.InvalidArgument, "ops[1].seq" },
        { "no_kind", StatusCode.InvalidArgument, "ops[0].kind" },
        { "empty_collection", StatusCode.InvalidArgument, "ops[0].put.collection" },
        { "long_collection", StatusCode.ResourceExhausted, "ops[0].put.collection" },
        { "empty_key", StatusCode.InvalidArgument, "ops[0].delete.key" },
        { "long_key", StatusCode.ResourceExhausted, "ops[0].put.key" },
        { "big_value", StatusCode.ResourceExhausted, "ops[0].append.value" },
        { "too_many_deps", StatusCode.ResourceExhausted, "ops[0].depends_on" },
        { "empty_dep", StatusCode.InvalidArgument, "ops[0].depends_on[1]" },
    };

    private static AppendOpsRequest Make(string name)
    {
        var ok = Put(1, "d", "k", "v");
        var b = Batch("p", ok, Put(2, "d", "k2", "v"));
        switch (name)
        {
            case "batch_id": b.BatchId = ""; break;
            case "producer_id": b.ProducerId = ""; break;
            case "producer_id_long": b.ProducerId = new string('p', 41); break;
            case "too_many_ops": b.Ops.Add(Put(3, "d", "a", "v")); b.Ops.Add(Put(4, "d", "b", "v")); break;
            case "op_id": b.Ops[1].OpId = ""; break;
            case "seq_zero": b.Ops[0].Seq = 0; b.Ops[1].Seq = 1; break;
            case "seq_not_consecutive": b.Ops[1].Seq = 3; break;
            case "no_kind": b.Ops[0].ClearKind(); break;
            case "empty_collection": b.Ops[0].Put.Collection = ""; break;
            case "long_collection": b.Ops[0].Put.Collection = "abcdefg"; break;
            case "empty_key": b.Ops[0] = Delete(1, "d", ""); break;
            case "long_key": b.Ops[0].Put.Key = "123456789"; break;
            case "big_value": b.Ops[0] = AppendOp(1, "m", "01234567890"); break;
            case "too_many_deps": b.Ops[0].DependsOn.AddRange(["a", "b", "c"]); break;
            case "empty_dep": b.Ops[0].DependsOn.AddRange(["a", ""]); break;
        }
        return b;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Every_malformed_field_and_limit_names_the_field_and_applies_nothing(string name, StatusCode code, string field)
    {
        var status = (ShareRpcStatus)(int)code; // the theory's data is public: the gRPC code, the core's status has the same number
        var (owner, _) = await _f.NewShareAsync();
        var e = await Expect.Fails(() => _f.Engine.AppendAsync(owner, Make(name)), status, null, field);
        Assert.Equal(status == ShareRpcStatus.ResourceExhausted ? Reasons.Limit : Reasons.InvalidArgument, e.Reason);
        Assert.StartsWith(field, e.Message);
        if (status == ShareRpcStatus.ResourceExhausted) Assert.Matches(@"exceeds Max\w+ = \d+", e.Message);

        // Nothing applied, and the engine keeps serving.
        var ok = await _f.AppendAsync(owner, "p", Put(1, "d", "k", "v"));
        Assert.Equal(1UL, ok.Acks[0].Cursor);
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ShareRpcServerOptions { Limits = { MaxOpsPerBatch = 0 } }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ShareRpcServerOptions { LiveRefLifetime = TimeSpan.Zero }.Validate());
        Assert.Throws<ArgumentException>(() => new ShareRpcServerOptions { DataDirectory = " " }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ShareRpcServerOptions { Limits = { MaxSecretBytes = 16 } }.Validate());
        new ShareRpcServerOptions().Validate();
    }

    [Fact]
    public async Task Snapshot_arguments_are_checked()
    {
        var (owner, _) = await _f.NewShareAsync();
        await Expect.Fails(() => _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { PageSize = -1 }), ShareRpcStatus.InvalidArgument, null, "page_size");
        await Expect.Fails(() => _f.Engine.GetSnapshotAsync(owner, new GetSnapshotRequest { PageToken = "!!" }), ShareRpcStatus.InvalidArgument, null, "page_token");
        await Expect.Fails(() => _f.Engine.CreateShareAsync(new CreateShareRequest { ShareKey = "x", OwnerSecret = ByteString.CopyFrom(new byte[2000]) }, null, Endpoint),
            ShareRpcStatus.ResourceExhausted, Reasons.Limit, "owner_secret");
    }
}
