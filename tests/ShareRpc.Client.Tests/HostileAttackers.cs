using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Sharerpc.V1;
using static ShareRpc.TestSupport.Calls;

namespace ShareRpc.Client.Tests;

/// <summary>
/// Hostile holders of ordinary capabilities, as plain gRPC peers (the generated stub, no SDK), each
/// on its own connection: what issue 13 reproduced against the server, at once. Every attacker runs
/// until <see cref="Stop"/> and counts what it got through.
/// </summary>
internal sealed class HostileAttackers(string address) : IAsyncDisposable
{
    private const int MiB = 1024 * 1024;
    private static readonly ByteString s_oneMiB = UnsafeByteOperations.UnsafeWrap(new byte[MiB]);

    private readonly List<GrpcChannel> _channels = [];
    private readonly List<Task> _running = [];
    private readonly CancellationTokenSource _stop = new();

    public long FloodBatchesAcked;
    public long AmplifyingBatchesAcked;
    public int SlowReadersOpen;
    public int HoardedStreams;
    public int HoardRefusals;

    private Sharerpc.V1.ShareRpc.ShareRpcClient NewStub()
    {
        var channel = Channel(address);
        lock (_channels) _channels.Add(channel);
        return Stub(channel);
    }

    /// <summary>A share of its own (anyone may create one) and its owner's live ref.</summary>
    public async Task<(string SturdyRef, CallOptions Auth)> OwnShareAsync(string key)
    {
        var stub = NewStub();
        var created = await stub.CreateShareAsync(new CreateShareRequest { ShareKey = key, OwnerSecret = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)) });
        var live = await stub.RedeemShareAsync(new RedeemShareRequest { SturdyRef = created.SturdyRef });
        return (created.SturdyRef, Bearer(live.LiveRef));
    }

    /// <summary>A delegate of <paramref name="ownerAuth"/>'s share holding only <paramref name="right"/>.</summary>
    public async Task<(string CapabilityId, CallOptions Auth)> DelegateAsync(CallOptions ownerAuth, Right right)
    {
        var stub = NewStub();
        var d = await stub.DelegateCapabilityAsync(new DelegateCapabilityRequest { Rights = { right }, Secret = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)) }, ownerAuth);
        var live = await stub.RedeemShareAsync(new RedeemShareRequest { SturdyRef = d.SturdyRef });
        return (d.CapabilityId, Bearer(live.LiveRef));
    }

    /// <summary>Fills a share with <paramref name="count"/> documents of 1 MiB (a log of as many 1 MiB ops).</summary>
    public async Task FillAsync(CallOptions auth, int count)
    {
        using var call = NewStub().AppendOps(auth);
        for (var i = 1; i <= count; i++) await call.RequestStream.WriteAsync(Batch("filler", (ulong)i, Put("big", "doc" + i, s_oneMiB)));
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext()) { }
    }

    /// <summary>
    /// Slow readers: Subscribe streams (with and without a snapshot) opened and never read; each one
    /// leaves after a while and comes back, as reconnecting readers would.
    /// </summary>
    public void SlowReaders(CallOptions readAuth, int streams, TimeSpan hold)
    {
        for (var i = 0; i < streams; i++)
        {
            var request = new SubscribeRequest { FromCursor = 1, IncludeSnapshot = i % 2 == 0 };
            _running.Add(Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    using var call = NewStub().Subscribe(request, readAuth.WithCancellationToken(_stop.Token));
                    await call.ResponseHeadersAsync; // the server has started to send
                    Interlocked.Increment(ref SlowReadersOpen);
                    try { await Task.Delay(hold, _stop.Token); } // never read
                    finally { Interlocked.Decrement(ref SlowReadersOpen); }
                }
            }));
        }
    }

    /// <summary>A byte flood: AppendOps streams of 3 MiB batches (three 1 MiB puts, legal), as fast as the server takes them.</summary>
    public void Flood(CallOptions auth, int streams)
    {
        for (var s = 0; s < streams; s++)
        {
            _running.Add(Pipeline(auth, (producer, seq) => Batch(producer, seq, Put("blobs", "a", s_oneMiB), Put("blobs", "b", s_oneMiB), Put("blobs", "c", s_oneMiB)), 3,
                () => Interlocked.Increment(ref FloodBatchesAcked)));
        }
    }

    /// <summary>Amplifying batches: 1,024 appends into 1,024 collections each.</summary>
    public void Amplify(CallOptions auth, int streams)
    {
        for (var s = 0; s < streams; s++)
        {
            _running.Add(Pipeline(auth, (producer, seq) =>
            {
                var b = new AppendOpsRequest { BatchId = Guid.CreateVersion7().ToString(), ProducerId = producer };
                for (var i = 0; i < 1024; i++)
                    b.Ops.Add(new Op { OpId = Guid.CreateVersion7().ToString(), Seq = seq + (ulong)i, Append = new Append { Collection = "c" + i, Value = ByteString.CopyFromUtf8("x") } });
                return b;
            }, 1024, () => Interlocked.Increment(ref AmplifyingBatchesAcked)));
        }
    }

    /// <summary>
    /// Stream hoarding: a READ delegate opens <paramref name="attempts"/> Subscribe streams on the
    /// victim's share at once and holds those it gets; an APPEND delegate opens idle AppendOps streams.
    /// </summary>
    public void Hoard(CallOptions readAuth, CallOptions appendAuth, int attempts)
    {
        _running.Add(Task.Run(async () =>
        {
            var held = new List<IDisposable>();
            try
            {
                var subs = Enumerable.Range(0, attempts).Select(_ => NewStub().Subscribe(new SubscribeRequest(), readAuth.WithCancellationToken(_stop.Token))).ToList();
                held.AddRange(subs);
                held.AddRange(Enumerable.Range(0, attempts).Select(_ => NewStub().AppendOps(appendAuth.WithCancellationToken(_stop.Token))));
                await Task.WhenAll(subs.Select(async sub =>
                {
                    try
                    {
                        if (await sub.ResponseStream.MoveNext(_stop.Token)) Interlocked.Increment(ref HoardedStreams); // a heartbeat: held
                    }
                    catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
                    {
                        Interlocked.Increment(ref HoardRefusals);
                    }
                }));
                await Task.Delay(Timeout.Infinite, _stop.Token);
            }
            finally
            {
                foreach (var h in held) h.Dispose();
            }
        }));
    }

    /// <summary>Statuses that ended attackers' calls before the test stopped them (a client error is never INTERNAL or UNKNOWN).</summary>
    public System.Collections.Concurrent.ConcurrentBag<StatusCode> Failures { get; } = [];

    /// <summary>One producer's pipelined batches, acks read as they come; a stream the server ends is reopened under a new producer.</summary>
    private Task Pipeline(CallOptions auth, Func<string, ulong, AppendOpsRequest> batch, int opsPerBatch, Action acked) => Task.Run(async () =>
    {
        for (var attempt = 0; !_stop.IsCancellationRequested; attempt++)
        {
            var producer = Guid.CreateVersion7().ToString();
            using var call = NewStub().AppendOps(auth.WithCancellationToken(_stop.Token));
            var reader = Task.Run(async () =>
            {
                while (await call.ResponseStream.MoveNext(_stop.Token)) acked();
            });
            try
            {
                for (ulong seq = 1; !_stop.IsCancellationRequested && !reader.IsCompleted; seq += (ulong)opsPerBatch)
                    await call.RequestStream.WriteAsync(batch(producer, seq), _stop.Token);
                await reader;
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException e)
            {
                Failures.Add(e.StatusCode);
            }
        }
    });

    private static Op Put(string collection, string key, ByteString value) =>
        new() { OpId = Guid.CreateVersion7().ToString(), Put = new Put { Collection = collection, Key = key, Value = value } };

    private static AppendOpsRequest Batch(string producer, ulong firstSeq, params Op[] ops)
    {
        var b = new AppendOpsRequest { BatchId = Guid.CreateVersion7().ToString(), ProducerId = producer };
        for (var i = 0; i < ops.Length; i++)
        {
            ops[i].Seq = firstSeq + (ulong)i;
            b.Ops.Add(ops[i]);
        }
        return b;
    }

    /// <summary>Ends every attack and reports the first unexpected failure, if any.</summary>
    public async Task Stop()
    {
        await _stop.CancelAsync();
        foreach (var t in _running)
        {
            try { await t; }
            catch (Exception) when (_stop.IsCancellationRequested) { /* cut off by the test's end or by the server */ }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await Stop();
        lock (_channels) foreach (var c in _channels) c.Dispose();
        _stop.Dispose();
    }
}
