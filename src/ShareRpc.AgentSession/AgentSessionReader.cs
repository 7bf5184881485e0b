// AgentSessionReader: the type itself (fields, constructor, state properties, signalling); reading and applying are in AgentSessionReader.*.cs.
using Sharerpc.Agent.V1;
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.AgentSession;

/// <summary>
/// Rebuilds an agent session from a share: a snapshot (<see cref="LoadSnapshotAsync"/>, or the
/// snapshot a <see cref="FollowAsync"/> subscription starts with), then committed ops applied
/// in cursor order (Put and Append set a document, Delete removes it). <see cref="Cursor"/> is
/// the last cursor applied; <see cref="State"/> is the session at that cursor.
/// <para>
/// Documents of other collections are ignored (a share may carry more than the profile).
/// A profile document that cannot be used (another content type, an unparsable value, a part
/// key without '/') is left out and listed in <see cref="Skipped"/>, so one bad record from a
/// peer does not stop the view. Thread-safe: one loader/follower at a time, any number of
/// readers of <see cref="State"/>.
/// </para>
/// </summary>
public sealed partial class AgentSessionReader
{
    /// <summary>How many skipped records are kept (the oldest go first); <see cref="SkippedCount"/> counts all.</summary>
    public const int MaxSkippedKept = 1000;

    private readonly object _gate = new();
    private readonly ShareRpcClient _client;
    private readonly string _sturdyRef;
    private readonly Dictionary<string, Message> _messages = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, Part> _parts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CommittedDiff> _diffs = new(StringComparer.Ordinal);
    private readonly Queue<SkippedRecord> _skipped = new();
    private Session? _session;
    private ModelList? _models;
    private ulong _cursor;
    private ulong _head;
    private bool _loaded;
    private long _skippedCount;
    private AgentSessionState? _state;
    private Dictionary<(string Collection, string Key), Document>? _pendingSnapshot;
    private ulong _pendingSnapshotCursor;
    private TaskCompletionSource _changed = NewSignal();
    private Exception? _fault;
    private int _busy;

    public AgentSessionReader(ShareRpcClient client, string sturdyRef)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(sturdyRef);
        _client = client;
        _sturdyRef = sturdyRef;
    }

    /// <summary>Documents per GetSnapshot page asked for by <see cref="LoadSnapshotAsync"/>; 0 = the server's default.</summary>
    public int SnapshotPageSize { get; init; }

    /// <summary>Raised (on the loading/following task) after a snapshot or an op was applied. Read <see cref="State"/> for the result.</summary>
    public event EventHandler? Changed;

    /// <summary>The last share cursor applied (0 before anything was read).</summary>
    public ulong Cursor
    {
        get
        {
            lock (_gate)
            {
                return _cursor;
            }
        }
    }

    /// <summary>The share's head as last reported (snapshot cursor or heartbeat); <see cref="Cursor"/> lags it while catching up.</summary>
    public ulong HeadCursor
    {
        get
        {
            lock (_gate)
            {
                return Math.Max(_head, _cursor);
            }
        }
    }

    /// <summary>True once a snapshot (or the log from cursor 1) has been applied.</summary>
    public bool IsLoaded
    {
        get
        {
            lock (_gate)
            {
                return _loaded;
            }
        }
    }

    /// <summary>The session at <see cref="Cursor"/>.</summary>
    public AgentSessionState State
    {
        get
        {
            lock (_gate)
            {
                return _state ??= BuildState();
            }
        }
    }

    public long SkippedCount
    {
        get
        {
            lock (_gate)
            {
                return _skippedCount;
            }
        }
    }

    /// <summary>The most recent records that could not be used (at most <see cref="MaxSkippedKept"/>).</summary>
    public IReadOnlyList<SkippedRecord> Skipped
    {
        get
        {
            lock (_gate)
            {
                return _skipped.ToArray();
            }
        }
    }

    /// <summary>Under the lock: drop the cached state and wake waiters.</summary>
    private void MarkChanged()
    {
        _state = null;
        Signal();
    }

    private void Signal()
    {
        var old = _changed;
        _changed = NewSignal();
        old.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void Enter()
    {
        if (Interlocked.Exchange(ref _busy, 1) != 0)
        {
            throw new InvalidOperationException("This reader is already loading or following; use one reader per task.");
        }
    }

    private void Exit() => Volatile.Write(ref _busy, 0);
}
