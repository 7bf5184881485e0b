namespace ShareRpc.Chaos.Faults;

/// <summary>Which faults a run injects and how often: the chance that one frame / commit / ack gets a fault.</summary>
public sealed class FaultMix
{
    /// <summary>The kinds drawn from (default: all).</summary>
    public HashSet<FaultKind> Kinds { get; set; } = [.. FaultKinds.All];

    /// <summary>Chance (0..1) that a given client request frame, response frame, server read, commit or ack gets a fault.</summary>
    public double Rate { get; set; } = 0.08;

    /// <summary>Scheduled positions per target (frames / commits beyond it run clean, so every scenario ends).</summary>
    public int Horizon { get; set; } = 64;

    public static FaultMix Parse(string? kinds, double rate)
    {
        var mix = new FaultMix { Rate = rate };
        if (!string.IsNullOrWhiteSpace(kinds) && kinds != "all")
        {
            mix.Kinds = [.. kinds.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(FaultKinds.Parse)];
        }

        return mix;
    }
}
