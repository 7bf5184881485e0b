using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ShareRpc.Server.Diagnostics;
using ShareRpc.TestSupport;
using Sharerpc.V1;
using static ShareRpc.Server.Tests.EngineFixture;

namespace ShareRpc.Server.Tests;

/// <summary>
/// The engine's log events and metric values after a workload the test drives (docs/operate.md).
/// Each engine tags its measurements with its own instance, so the counts are exact although other
/// tests' engines run at the same time on meters of the same name.
/// </summary>
public sealed class DiagnosticsTests : IAsyncLifetime
{
    private readonly LogSink _logs = new();
    private EngineFixture _f = null!;
    private MeterCapture _metrics = null!;

    public Task InitializeAsync()
    {
        _metrics = new MeterCapture(ShareRpcServerDiagnostics.MeterName, () => _f?.Engine.Diagnostics.Metrics.Instance);
        _f = new EngineFixture(logs: _logs.Factory);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _f.DisposeAsync();
        _metrics.Dispose();
        _logs.Factory.Dispose();
    }

    [Fact]
    public async Task Ops_by_outcome_and_commit_durations_match_the_workload_exactly()
    {
        var (owner, _) = await _f.NewShareAsync();
        // Batch 1: three applied, one rejected (depends on an op the share never saw).
        var first = Batch("p", Put(1, "d", "a", "1"), Put(2, "d", "b", "1"), AppendOp(3, "log", "x"), Put(4, "d", "c", "1", dependsOn: "missing"));
        await _f.Engine.AppendAsync(owner, first);
        // Batch 2: the same batch again (a resend after a lost ack): the applied ones are duplicates.
        var again = await _f.Engine.AppendAsync(owner, first);
        // Batch 3: two new ops, applied.
        await _f.Engine.AppendAsync(owner, Batch("p", Put(5, "d", "d", "1"), Delete(6, "d", "a")));

        var outcomes = again.Acks.GroupBy(r => r.Status).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, outcomes.GetValueOrDefault(OpStatus.Duplicate));
        Assert.Equal(5.0, _metrics.Sum(ServerMetrics.Ops, "outcome=applied"));
        Assert.Equal(3.0, _metrics.Sum(ServerMetrics.Ops, "outcome=duplicate"));
        Assert.Equal(1.0 + outcomes.GetValueOrDefault(OpStatus.Rejected), _metrics.Sum(ServerMetrics.Ops, "outcome=rejected"));
        Assert.Equal(3, _metrics.Count(ServerMetrics.CommitDuration));
        Assert.All(_metrics.Values(ServerMetrics.CommitDuration), s => Assert.InRange(s, 0.0, 60.0)); // seconds, not ms
        Assert.Equal(0.0, _metrics.Sum(ServerMetrics.CommitFailures));
    }

    [Fact]
    public async Task Share_delegate_and_revoke_are_logged_by_id_without_secrets()
    {
        var secret = NewSecret();
        var (created, _) = await _f.CreateShareAsync("diag-share", secret);
        var owner = await _f.RedeemAsync(created.SturdyRef);
        var delegation = new DelegateCapabilityRequest { Secret = ByteString.CopyFrom(NewSecret()), Note = "reader" };
        delegation.Rights.Add(Right.Read);
        var child = await _f.Engine.DelegateAsync(owner, delegation, Endpoint);
        await _f.Engine.RevokeAsync(owner, new RevokeCapabilityRequest { CapabilityId = child.CapabilityId });

        var shared = Assert.Single(_logs.WithId(1010));
        Assert.Equal(LogLevel.Information, shared.Level);
        Assert.Contains(created.ShareId, shared.Message, StringComparison.Ordinal);
        var delegated = Assert.Single(_logs.WithId(1013));
        Assert.Contains(child.CapabilityId, delegated.Message, StringComparison.Ordinal);
        var revoked = Assert.Single(_logs.WithId(1014));
        Assert.Equal("CapabilityRevoked", revoked.EventId.Name);
        Assert.Contains(child.CapabilityId, revoked.Message, StringComparison.Ordinal);
        Assert.Single(_logs.WithId(1012)); // the redeem, at Debug

        // Neither the sturdy refs, their secrets nor a live ref appear anywhere in what was logged.
        var everything = string.Join("\n", _logs.Entries.Select(e => e.Everything));
        Assert.DoesNotContain(created.SturdyRef, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(child.SturdyRef, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(created.SturdyRef[(created.SturdyRef.IndexOf('#', StringComparison.Ordinal) + 1)..], everything, StringComparison.Ordinal);
    }
}
