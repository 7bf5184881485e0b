using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Cluster.Tests;

/// <summary>One `sharerpc serve --store postgres` process.</summary>
public sealed class Node : IAsyncDisposable
{
    public required string Name { get; init; }
    public required int Port { get; init; }
    public required TestProcess Process { get; init; }
    public required GrpcChannel Channel { get; init; }
    public string Address => $"http://127.0.0.1:{Port}";

    /// <summary>SIGKILL: no drain, no flush.</summary>
    public Task KillAsync() => Process.KillAsync();

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await Process.DisposeAsync();
    }
}

/// <summary>
/// N stateless servers on one fresh PostgreSQL database, sharing one live-ref key file, optionally
/// behind a <see cref="TcpBalancer"/> (then sturdy refs name the balancer: --public-endpoint).
/// </summary>
public sealed class Cluster : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharerpc-cluster-").FullName;
    private readonly List<Node> _nodes = [];

    private Cluster(string connectionString) => ConnectionString = connectionString;

    public string ConnectionString { get; }
    public string KeyFile => Path.Combine(_dir, "live-ref.key");
    public TcpBalancer? Balancer { get; private set; }
    public IReadOnlyList<Node> Nodes => _nodes;

    public static async Task<Cluster> StartAsync(int nodes, bool balanced = false)
    {
        var cs = await (await PostgresTestServer.SharedAsync()).CreateDatabaseAsync("cluster");
        var cluster = new Cluster(cs);
        try
        {
            // The balancer binds first, so a node's port (bound, released, then bound by the node) can never be its port.
            var ports = new int[nodes];
            if (balanced) cluster.Balancer = new TcpBalancer(() => ports);
            // Sequentially: the first start migrates the schema; the others find it done (both orders are safe, see docs/postgres.md).
            for (var i = 0; i < nodes; i++)
            {
                var node = await cluster.StartNodeAsync(((char)('A' + i)).ToString());
                ports[i] = node.Port;
                cluster._nodes.Add(node);
            }
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Starts a node on a free port. A port found free can be taken before the node binds it (by
    /// another test's connection): then the node exits "address already in use" and is started
    /// again on another port.
    /// </summary>
    private async Task<Node> StartNodeAsync(string name)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = Ports.Free();
            List<string> args = ["serve", "--store", "postgres", "--pg", ConnectionString, "--key-file", KeyFile, "--port", port.ToString()];
            if (Balancer is not null) args.AddRange(["--public-endpoint", $"127.0.0.1:{Balancer.Port}"]);
            var process = TestProcess.Start(RepoPaths.CliDll, [.. args]);
            try
            {
                await process.WaitForLineAsync(l => l.StartsWith("listening on ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                return new Node { Name = name, Port = port, Process = process, Channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}") };
            }
            catch (InvalidOperationException) when (attempt < 3 && process.HasExited && process.Lines.Any(l => l.Contains("address already in use", StringComparison.OrdinalIgnoreCase)))
            {
                await process.DisposeAsync();
            }
            catch
            {
                await process.DisposeAsync();
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var n in _nodes) await n.DisposeAsync();
        if (Balancer is not null) await Balancer.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Raw sharerpc.v1 calls on one node's channel (no SDK between the test and the wire).</summary>
public static class NodeCalls
{
    public static byte[] NewSecret() => RandomNumberGenerator.GetBytes(32);

    public static async Task<CreateShareResponse> CreateAsync(GrpcChannel channel, string key) =>
        await Stub(channel).CreateShareAsync(new CreateShareRequest { ShareKey = key, OwnerSecret = ByteString.CopyFrom(NewSecret()) });

    public static async Task<RedeemShareResponse> RedeemAsync(GrpcChannel channel, string sturdyRef) =>
        await Stub(channel).RedeemShareAsync(new RedeemShareRequest { SturdyRef = sturdyRef });

    public static Op Put(ulong seq, string collection, string key, string value) => new()
    {
        OpId = Guid.CreateVersion7().ToString(),
        Seq = seq,
        Put = new Put { Collection = collection, Key = key, Value = ByteString.CopyFromUtf8(value) },
    };

    public static Op Append(ulong seq, string collection, string value) => new()
    {
        OpId = Guid.CreateVersion7().ToString(),
        Seq = seq,
        Append = new Append { Collection = collection, Value = ByteString.CopyFromUtf8(value) },
    };

    public static AppendOpsRequest Batch(string producer, params Op[] ops)
    {
        var b = new AppendOpsRequest { BatchId = Guid.CreateVersion7().ToString(), ProducerId = producer };
        b.Ops.AddRange(ops);
        return b;
    }

    /// <summary>Sends <paramref name="batch"/> on a new AppendOps stream and returns its one ack.</summary>
    public static async Task<AppendOpsResponse> AppendAsync(GrpcChannel channel, string liveRef, AppendOpsRequest batch)
    {
        using var call = Stub(channel).AppendOps(Bearer(liveRef));
        await call.RequestStream.WriteAsync(batch);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(), "the stream ended without an ack");
        var ack = call.ResponseStream.Current;
        while (await call.ResponseStream.MoveNext()) { }
        return ack;
    }

    /// <summary>The log from cursor 1 to the share's current head, read by Subscribe on <paramref name="channel"/>.</summary>
    public static async Task<List<CommittedOp>> ReadLogAsync(GrpcChannel channel, string sturdyRef)
    {
        var live = await RedeemAsync(channel, sturdyRef);
        var log = new List<CommittedOp>();
        if (live.Cursor == 0) return log;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = Stub(channel).Subscribe(new SubscribeRequest { FromCursor = 0 }, Bearer(live.LiveRef, cts.Token));
        while (await call.ResponseStream.MoveNext())
        {
            if (call.ResponseStream.Current.Op is { } op)
            {
                log.Add(op);
                if (op.Cursor == live.Cursor) break;
            }
        }
        return log;
    }

    public static string? Reason(RpcException e) => e.Trailers.GetValue(Reasons.TrailerName);
}
