namespace ShareRpc.Chaos.Faults;

/// <summary>Every fault the harness can inject, by where it fires.</summary>
public enum FaultKind
{
    // Client transport (TransportFaultHandler, wrapping the client's HTTP handler).

    /// <summary>An AppendOps request frame never reaches the server; the stream breaks (client side).</summary>
    DropRequest,

    /// <summary>An ack (or a Subscribe event) is lost on its way back, after the server committed; the stream breaks.</summary>
    DropResponse,

    /// <summary>Half of a batch frame is written, then the stream is reset.</summary>
    ResetMidBatch,

    /// <summary>A request frame is held 1–20 ms.</summary>
    Delay,

    /// <summary>A batch frame is sent twice on the same stream.</summary>
    DuplicateBatch,

    /// <summary>A response frame is held 100–300 ms (a stalled peer).</summary>
    Stall,

    // Server (ServerFaultHooks).

    /// <summary>The group commit fails before COMMIT (nothing applied; writes fail UNAVAILABLE).</summary>
    FailBeforeCommit,

    /// <summary>After the commit and before the ack the server aborts the stream (it "dies").</summary>
    DieAfterCommit,

    /// <summary>An ack is held 50–200 ms after its commit.</summary>
    StallAck,

    /// <summary>The server resets the stream (RST_STREAM) when it has read a batch, before queueing it.</summary>
    ResetStream,

    // Storage.

    /// <summary>COMMIT fails with SQLITE_FULL (disk full); on PostgreSQL with SQLSTATE 53100 disk_full.</summary>
    DiskFull,
}

/// <summary>Where a fault kind fires.</summary>
public static class FaultKinds
{
    public static readonly FaultKind[] ClientRequest = [FaultKind.DropRequest, FaultKind.ResetMidBatch, FaultKind.Delay, FaultKind.DuplicateBatch];
    public static readonly FaultKind[] ClientResponse = [FaultKind.DropResponse, FaultKind.Stall];
    public static readonly FaultKind[] ServerCommit = [FaultKind.FailBeforeCommit, FaultKind.DiskFull];
    public static readonly FaultKind[] ServerRead = [FaultKind.ResetStream];
    public static readonly FaultKind[] ServerAck = [FaultKind.DieAfterCommit, FaultKind.StallAck];

    public static IReadOnlyList<FaultKind> All { get; } = Enum.GetValues<FaultKind>();

    /// <summary>kebab-case name (drop-request, disk-full …) as the CLI and reports print it.</summary>
    public static string Name(this FaultKind kind)
    {
        var s = kind.ToString();
        var b = new System.Text.StringBuilder();
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsUpper(s[i]) && i > 0) b.Append('-');
            b.Append(char.ToLowerInvariant(s[i]));
        }

        return b.ToString();
    }

    public static FaultKind Parse(string name) =>
        All.FirstOrDefault(k => k.Name() == name.Trim().ToLowerInvariant(), (FaultKind)(-1)) is var k && (int)k >= 0
            ? k
            : throw new ArgumentException($"unknown fault '{name}'; known: {string.Join(", ", All.Select(x => x.Name()))}");
}
