using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using ShareRpc.Server.Capabilities;
using Sharerpc.V1;

namespace ShareRpc.Server.Tests;

/// <summary>A clock the test moves by hand (delays still use real timers).</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;
    public override DateTimeOffset GetUtcNow() => _now;
    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>
/// A ShareEngine on a real SQLite file in a fresh temp directory, or (<see cref="OpenAsync"/>) on any
/// store a factory opens — the store contract suite runs the same tests on SQLite and PostgreSQL.
/// </summary>
internal sealed class EngineFixture : IAsyncDisposable
{
    public static readonly RefEndpoint Endpoint = new("127.0.0.1", 7443, false);

    private readonly Func<Task<ShareRpc.Server.Storage.IShareStore>>? _openStore;

    private EngineFixture(Func<Task<ShareRpc.Server.Storage.IShareStore>> openStore, string dir, ShareRpcServerOptions options)
    {
        _openStore = openStore;
        Dir = dir;
        Clock = new ManualClock(DateTimeOffset.UtcNow);
        Options = options;
        Engine = null!;
    }

    /// <summary>An engine on the store <paramref name="openStore"/> opens (again at each <see cref="ReopenAsync"/>); the server key lives in a temp directory.</summary>
    public static async Task<EngineFixture> OpenAsync(Func<Task<ShareRpc.Server.Storage.IShareStore>> openStore, Action<ShareRpcServerOptions>? configure = null)
    {
        var dir = Path.Combine(Path.GetTempPath(), "sharerpc-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var options = new ShareRpcServerOptions { DataDirectory = dir };
        configure?.Invoke(options);
        var f = new EngineFixture(openStore, dir, options);
        f.Engine = new ShareEngine(await openStore(), options.LoadServerKey(), options, f.Clock);
        return f;
    }

    /// <param name="logs">Where the engine logs (tests/Shared LogSink.Factory), if anywhere.</param>
    public EngineFixture(Action<ShareRpcServerOptions>? configure = null, string? dir = null, Microsoft.Extensions.Logging.ILoggerFactory? logs = null)
    {
        Dir = dir ?? Path.Combine(Path.GetTempPath(), "sharerpc-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
        Clock = new ManualClock(DateTimeOffset.UtcNow);
        Options = new ShareRpcServerOptions { DataDirectory = Dir };
        configure?.Invoke(Options);
        Engine = ShareEngine.OpenSqlite(Options, Clock, logs);
    }

    public string Dir { get; }
    public ManualClock Clock { get; }
    public ShareRpcServerOptions Options { get; }
    public ShareEngine Engine { get; private set; }

    /// <summary>Disposes the engine and opens a new one on the same data directory.</summary>
    public async Task ReopenAsync()
    {
        await Engine.DisposeAsync();
        Engine = _openStore is null
            ? ShareEngine.OpenSqlite(Options, Clock)
            : new ShareEngine(await _openStore(), Options.LoadServerKey(), Options, Clock);
    }

    public static byte[] NewSecret() => RandomNumberGenerator.GetBytes(32);

    public async Task<(CreateShareResponse Response, byte[] Secret)> CreateShareAsync(string? key = null, byte[]? secret = null)
    {
        secret ??= NewSecret();
        var response = await Engine.CreateShareAsync(new CreateShareRequest
        {
            ShareKey = key ?? "session-" + Guid.NewGuid().ToString("N"),
            OwnerSecret = ByteString.CopyFrom(secret),
            Title = "test",
        }, null, Endpoint);
        return (response, secret);
    }

    public async Task<LiveRefClaims> RedeemAsync(string sturdyRef)
    {
        var r = await Engine.RedeemAsync(new RedeemShareRequest { SturdyRef = sturdyRef });
        return Engine.Authenticate("Bearer " + r.LiveRef);
    }

    /// <summary>A new share and its owner's live ref.</summary>
    public async Task<(LiveRefClaims Owner, string SturdyRef)> NewShareAsync()
    {
        var (created, _) = await CreateShareAsync();
        return (await RedeemAsync(created.SturdyRef), created.SturdyRef);
    }

    public Task<AppendOpsResponse> AppendAsync(LiveRefClaims claims, string producer, params Op[] ops) =>
        Engine.AppendAsync(claims, Batch(producer, ops));

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }

    // ---- op builders

    public static AppendOpsRequest Batch(string producer, params Op[] ops)
    {
        var b = new AppendOpsRequest { BatchId = Guid.CreateVersion7().ToString(), ProducerId = producer };
        b.Ops.AddRange(ops);
        return b;
    }

    public static string NewOpId() => Guid.CreateVersion7().ToString();

    public static Op Put(ulong seq, string collection, string key, string value, ulong? expectedVersion = null, string? opId = null, params string[] dependsOn)
    {
        var op = new Op
        {
            OpId = opId ?? NewOpId(),
            Seq = seq,
            Put = new Put { Collection = collection, Key = key, Value = ByteString.CopyFromUtf8(value), ContentType = "text/plain" },
        };
        if (expectedVersion is { } ev) op.Put.ExpectedVersion = ev;
        op.DependsOn.AddRange(dependsOn);
        return op;
    }

    public static Op Delete(ulong seq, string collection, string key, ulong? expectedVersion = null, string? opId = null)
    {
        var op = new Op { OpId = opId ?? NewOpId(), Seq = seq, Delete = new Delete { Collection = collection, Key = key } };
        if (expectedVersion is { } ev) op.Delete.ExpectedVersion = ev;
        return op;
    }

    public static Op AppendOp(ulong seq, string collection, string value, string? opId = null, params string[] dependsOn)
    {
        var op = new Op { OpId = opId ?? NewOpId(), Seq = seq, Append = new Append { Collection = collection, Value = ByteString.CopyFromUtf8(value) } };
        op.DependsOn.AddRange(dependsOn);
        return op;
    }
}

internal static class Expect
{
    public static async Task<ShareRpcException> Fails(Func<Task> call, ShareRpcStatus status, string? reason = null, string? field = null)
    {
        var e = await Assert.ThrowsAsync<ShareRpcException>(call);
        Assert.Equal(status, e.Status);
        if (reason is not null) Assert.Equal(reason, e.Reason);
        if (field is not null) Assert.Equal(field, e.Field);
        return e;
    }
}
