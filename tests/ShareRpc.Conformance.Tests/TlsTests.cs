using Google.Protobuf;
using Grpc.Core;
using Sharerpc.V1;

namespace ShareRpc.Conformance.Tests;

/// <summary>
/// <c>sharerpc serve --tls-cert --tls-key</c>: grpcio with ssl_channel_credentials and the C#
/// generated client over https, both trusting only the server's self-signed certificate.
/// </summary>
public sealed class TlsTests(TlsServeFixture server) : IClassFixture<TlsServeFixture>
{
    [Fact]
    public async Task Grpcio_creates_appends_and_reads_over_tls()
    {
        var result = await Peers.RunPythonContractClientAsync(
            ["--target", $"127.0.0.1:{server.Port}", "--case", "smoke", "--tls", "--ca", server.RootPemFile, "--override", "localhost"]);

        Assert.True(result.ExitCode == 0, "contract_client.py over TLS failed: " + result.Describe());
        Steps.AssertInOrder(result,
        [
            "PASS create: created, retry created=false same ref, other secret ALREADY_EXISTS",
            "PASS append: one batch, APPLIED",
            "PASS snapshot: 2 documents at cursor 2",
            "ALL PASS",
        ]);
    }

    [Fact]
    public async Task The_generated_client_calls_over_https_trusting_the_self_signed_root()
    {
        Assert.StartsWith("https://", server.Address, StringComparison.Ordinal);
        var share = await server.CreateShareAsync("tls-dotnet");
        Assert.StartsWith("sharerpcs://", share.SturdyRef, StringComparison.Ordinal); // the ref says TLS too
        var live = await server.RedeemAsync(share.SturdyRef);
        var auth = new Metadata { { "authorization", $"Bearer {live.LiveRef}" } };

        using var call = server.Client.AppendOps(auth, ServeFixture.Deadline());
        var batch = new AppendOpsRequest { BatchId = "tls-b1", ProducerId = "tls-producer" };
        batch.Ops.Add(new Op { OpId = Guid.CreateVersion7().ToString(), Seq = 1, Put = new Put { Collection = "c", Key = "k", Value = ByteString.CopyFromUtf8("v") } });
        await call.RequestStream.WriteAsync(batch);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var ack = Assert.Single(call.ResponseStream.Current.Acks);
        Assert.Equal((OpStatus.Applied, 1UL), (ack.Status, ack.Cursor));

        var snapshot = await server.Client.GetSnapshotAsync(new GetSnapshotRequest(), auth, ServeFixture.Deadline());
        Assert.Equal("v", Assert.Single(snapshot.Documents).Value.ToStringUtf8());
    }
}
