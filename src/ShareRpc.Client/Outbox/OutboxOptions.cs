namespace ShareRpc.Client.Outbox;

/// <summary>How the outbox file is written and how batches are cut.</summary>
public sealed class OutboxOptions
{
    /// <summary>
    /// synchronous=FULL (default): an op survives power loss once Enqueue returns. False gives
    /// synchronous=NORMAL: it survives a process crash, not power loss.
    /// </summary>
    public bool FsyncEveryCommit { get; set; } = true;

    /// <summary>Ops per sealed batch at most.</summary>
    public int MaxBatchOps { get; set; } = 512;

    /// <summary>Serialized bytes per sealed batch at most (a single larger op gets a batch of its own).</summary>
    public int MaxBatchBytes { get; set; } = 1024 * 1024;

    /// <summary>Enqueue requests gathered into one commit at most.</summary>
    public int MaxOpsPerCommit { get; set; } = 4096;

    /// <summary>Enqueue requests waiting for their commit at most; callers wait beyond it (back-pressure).</summary>
    public int MaxQueuedEnqueues { get; set; } = 65_536;

    /// <summary>Acked ops are kept this long (for inspection), then compacted away.</summary>
    public TimeSpan AckedRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Ops removed per compaction transaction at most (count; a batch is never split): the longest
    /// compaction holds the outbox from enqueues and acks (docs/client.md, "Compaction").
    /// </summary>
    internal int CompactionSliceOps { get; set; } = 2048;

    internal IEnumerable<string> Problems()
    {
        if (MaxBatchOps <= 0) yield return $"Outbox.MaxBatchOps must be > 0 (was {MaxBatchOps}).";
        if (MaxBatchBytes <= 0) yield return $"Outbox.MaxBatchBytes must be > 0 (was {MaxBatchBytes}).";
        if (MaxOpsPerCommit <= 0) yield return $"Outbox.MaxOpsPerCommit must be > 0 (was {MaxOpsPerCommit}).";
        if (MaxQueuedEnqueues <= 0) yield return $"Outbox.MaxQueuedEnqueues must be > 0 (was {MaxQueuedEnqueues}).";
        if (AckedRetention < TimeSpan.Zero) yield return $"Outbox.AckedRetention must be >= 0 (was {AckedRetention}).";
        if (CompactionSliceOps <= 0) yield return $"Outbox.CompactionSliceOps must be > 0 (was {CompactionSliceOps}).";
    }

    internal void Validate()
    {
        var problems = Problems().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentOutOfRangeException(nameof(OutboxOptions), string.Join(" ", problems));
        }
    }
}
