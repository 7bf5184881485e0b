using System.Globalization;
using System.Text;

namespace ShareRpc.Chaos.Faults;

/// <summary>One scheduled fault: at the <see cref="Index"/>-th event of <see cref="Point"/> on <see cref="Target"/>.</summary>
/// <param name="Target">"server" or a client name (a producer "s0.p1", a subscriber "s0.r0").</param>
/// <param name="Point">request | response (client frames), read | commit | ack (server).</param>
/// <param name="Index">Which event of that point (0 = the first).</param>
/// <param name="Kind">What happens there.</param>
/// <param name="DelayMs">For delays and stalls: how long, in milliseconds.</param>
public sealed record ScheduledFault(string Target, string Point, int Index, FaultKind Kind, int DelayMs)
{
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Target}/{Point}#{Index}: {Kind.Name()}{(DelayMs > 0 ? $" {DelayMs}ms" : "")}");
}

/// <summary>
/// The fault schedule of one scenario, fixed by its seed: which frame / commit / ack gets which fault.
/// Timing is not part of it (threads interleave as they will), the positions are.
/// </summary>
public sealed class FaultSchedule
{
    private readonly Dictionary<(string Target, string Point, int Index), ScheduledFault> _at = new();

    public FaultSchedule(IEnumerable<ScheduledFault> faults)
    {
        foreach (var f in faults)
        {
            _at[(f.Target, f.Point, f.Index)] = f;
        }

        Faults = [.. _at.Values.OrderBy(f => f.Target, StringComparer.Ordinal).ThenBy(f => f.Point, StringComparer.Ordinal).ThenBy(f => f.Index)];
    }

    public IReadOnlyList<ScheduledFault> Faults { get; }

    public ScheduledFault? At(string target, string point, int index) => _at.GetValueOrDefault((target, point, index));

    /// <summary>Draws the schedule for the given clients (producers and subscribers) and the server.</summary>
    public static FaultSchedule Generate(Random random, FaultMix mix, IReadOnlyList<string> producers, IReadOnlyList<string> subscribers)
    {
        var list = new List<ScheduledFault>();
        void Draw(string target, string point, FaultKind[] kinds)
        {
            var usable = kinds.Where(mix.Kinds.Contains).ToArray();
            for (var i = 0; i < mix.Horizon; i++)
            {
                // Always consume the same random numbers, whatever the mix, so a seed's workload does not move.
                var roll = random.NextDouble();
                var pick = random.Next(1000);
                var delay = random.Next(1000);
                if (usable.Length == 0 || roll >= mix.Rate)
                {
                    continue;
                }

                var kind = usable[pick % usable.Length];
                var ms = kind switch
                {
                    FaultKind.Delay => 1 + delay % 20,
                    FaultKind.Stall => 100 + delay % 200,
                    FaultKind.StallAck => 50 + delay % 150,
                    _ => 0,
                };
                list.Add(new ScheduledFault(target, point, i, kind, ms));
            }
        }

        foreach (var p in producers)
        {
            Draw(p, "request", FaultKinds.ClientRequest);
            Draw(p, "response", FaultKinds.ClientResponse);
        }

        foreach (var s in subscribers)
        {
            Draw(s, "response", FaultKinds.ClientResponse);
        }

        Draw("server", "read", FaultKinds.ServerRead);
        Draw("server", "commit", FaultKinds.ServerCommit);
        Draw("server", "ack", FaultKinds.ServerAck);
        return new FaultSchedule(list);
    }

    public override string ToString()
    {
        var b = new StringBuilder();
        foreach (var f in Faults)
        {
            b.Append("  ").Append(f).Append('\n');
        }

        return b.Length == 0 ? "  (no faults)\n" : b.ToString();
    }
}
