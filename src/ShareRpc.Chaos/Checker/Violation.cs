namespace ShareRpc.Chaos.Checker;

/// <summary>A broken invariant. <see cref="OpIds"/> and <see cref="Actors"/> select the history slice that shows it.</summary>
public sealed record Violation(string Kind, string Message, IReadOnlyList<string> OpIds, IReadOnlyList<string> Actors)
{
    public const string Lost = "lost";
    public const string Duplicate = "duplicate";
    public const string Order = "order";
    public const string Fence = "fence";
    public const string View = "view";
    public const string Snapshot = "snapshot";
    public const string Phantom = "phantom";
    public const string Stuck = "stuck";
    public const string Log = "log";

    public static IReadOnlyList<string> Kinds { get; } = [Lost, Duplicate, Order, Fence, View, Snapshot, Phantom, Stuck, Log];
}
