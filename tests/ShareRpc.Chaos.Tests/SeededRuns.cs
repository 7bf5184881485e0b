namespace ShareRpc.Chaos.Tests;

/// <summary>
/// The test classes that run hundreds of seeded scenarios, several at a time, share this collection so
/// xunit runs them one after another: side by side on a 2-core machine they starved each other until a
/// scenario's 30 s call deadline passed (a "stuck" that was the test rig's, not the system's).
/// </summary>
[CollectionDefinition(Name)]
public sealed class SeededRuns
{
    public const string Name = "Seeded chaos runs";
}
