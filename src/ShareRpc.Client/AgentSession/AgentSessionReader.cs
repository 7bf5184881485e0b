using System.Globalization;
using Google.Protobuf;
using ShareRpc.Client.AgentSession.V1;
using ShareRpc.Protocol.V1;

namespace ShareRpc.Client.AgentSession;

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
public sealed class AgentSessionReader
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

    /// <summary>The session as it is now, from a fresh snapshot (see <see cref="LoadSnapshotAsync"/>).</summary>
    public static Task<AgentSessionState> ReadSnapshotAsync(ShareRpcClient client, string sturdyRef, CancellationToken cancellationToken = default) =>
        new AgentSessionReader(client, sturdyRef).LoadSnapshotAsync(cancellationToken);

    /// <summary>The session as it is now, from a fresh snapshot read <paramref name="pageSize"/> documents per page.</summary>
    public static Task<AgentSessionState> ReadSnapshotAsync(ShareRpcClient client, string sturdyRef, int pageSize, CancellationToken cancellationToken = default) =>
        new AgentSessionReader(client, sturdyRef) { SnapshotPageSize = pageSize }.LoadSnapshotAsync(cancellationToken);

    /// <summary>
    /// Replaces the state with a snapshot read by <see cref="ShareRpcClient.GetSnapshotAsync"/>,
    /// page by page. Pages are not pinned to one cursor (each answers at the head when it is
    /// read), so the pages are applied at the first page's cursor and the log from there to the
    /// last page's cursor is replayed on top: replaying an op whose effect a later page already
    /// shows sets the same value again, so the result is exactly the session at the last
    /// page's cursor.
    /// </summary>
    public async Task<AgentSessionState> LoadSnapshotAsync(CancellationToken cancellationToken = default)
    {
        Enter();
        try
        {
            var documents = new Dictionary<(string, string), Document>();
            ulong? first = null;
            ulong last = 0;
            var token = "";
            do
            {
                var page = await _client.GetSnapshotAsync(_sturdyRef, "", SnapshotPageSize, token, cancellationToken).ConfigureAwait(false);
                first ??= page.Cursor;
                last = page.Cursor;
                foreach (var d in page.Documents)
                {
                    documents[(d.Collection, d.Key)] = d;
                }

                token = page.NextPageToken;
            }
            while (!string.IsNullOrEmpty(token));

            ApplySnapshot(first!.Value, documents.Values);
            if (last > first.Value)
            {
                await foreach (var e in _client.SubscribeAsync(_sturdyRef, first.Value + 1, false, cancellationToken).ConfigureAwait(false))
                {
                    if (e.EventCase == SubscribeResponse.EventOneofCase.Op)
                    {
                        Apply(e.Op);
                        if (e.Op.Cursor >= last)
                        {
                            break;
                        }
                    }
                }
            }

            return State;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// Follows the share until <paramref name="cancellationToken"/> is cancelled (then throws
    /// <see cref="OperationCanceledException"/>): from the snapshot a Subscribe stream starts
    /// with when nothing is loaded yet, else from <see cref="Cursor"/> + 1. The subscription
    /// resumes after disconnects without a gap (<see cref="ShareRpcClient.SubscribeAsync"/>); an
    /// error it cannot retry (revoked, share gone) ends this call and is rethrown to
    /// <see cref="WaitForCursorAsync"/> callers.
    /// </summary>
    public async Task FollowAsync(CancellationToken cancellationToken = default)
    {
        Enter();
        try
        {
            bool loaded;
            ulong from;
            lock (_gate)
            {
                _fault = null;
                loaded = _loaded;
                from = loaded ? _cursor + 1 : 0;
            }

            await foreach (var e in _client.SubscribeAsync(_sturdyRef, from, includeSnapshot: !loaded, cancellationToken).ConfigureAwait(false))
            {
                switch (e.EventCase)
                {
                    case SubscribeResponse.EventOneofCase.Snapshot:
                        ApplySnapshotChunk(e.Snapshot);
                        break;
                    case SubscribeResponse.EventOneofCase.Op:
                        Apply(e.Op);
                        break;
                    case SubscribeResponse.EventOneofCase.Heartbeat:
                        lock (_gate)
                        {
                            _head = Math.Max(_head, e.Heartbeat.Cursor);
                        }

                        break;
                }
            }
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            lock (_gate)
            {
                _fault = ex;
                Signal();
            }

            throw;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Completes with the state once <see cref="Cursor"/> ≥ <paramref name="cursor"/> (e.g. an op's ack cursor).</summary>
    public Task<AgentSessionState> WaitForCursorAsync(ulong cursor, CancellationToken cancellationToken = default) =>
        WaitAsync(s => s.Cursor >= cursor, cancellationToken);

    /// <summary>Completes with the first state (from now on) that satisfies <paramref name="predicate"/>.</summary>
    public async Task<AgentSessionState> WaitAsync(Func<AgentSessionState, bool> predicate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        while (true)
        {
            Task changed;
            AgentSessionState state;
            Exception? fault;
            lock (_gate)
            {
                state = _state ??= BuildState();
                changed = _changed.Task;
                fault = _fault;
            }

            if (predicate(state))
            {
                return state;
            }

            if (fault is not null)
            {
                throw new InvalidOperationException("The agent-session reader stopped following: " + fault.Message, fault);
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Replaces the state with these documents, read at <paramref name="cursor"/>.</summary>
    public void ApplySnapshot(ulong cursor, IEnumerable<Document> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        lock (_gate)
        {
            _session = null;
            _models = null;
            _messages.Clear();
            _parts.Clear();
            _diffs.Clear();
            foreach (var d in documents)
            {
                SetDocument(d.Collection, d.Key, d.Value, d.ContentType, d.Cursor);
            }

            _cursor = cursor;
            _head = Math.Max(_head, cursor);
            _loaded = true;
            _pendingSnapshot = null;
            MarkChanged();
        }

        Changed?.Invoke(this, EventArgs.Empty);
    }

    /// <summary>
    /// Applies one committed op. An op at or below <see cref="Cursor"/> was applied already and is
    /// ignored; one beyond <see cref="Cursor"/> + 1 would leave a gap and throws.
    /// </summary>
    public void Apply(CommittedOp committed)
    {
        ArgumentNullException.ThrowIfNull(committed);
        lock (_gate)
        {
            if (committed.Cursor <= _cursor)
            {
                return;
            }

            if (committed.Cursor != _cursor + 1)
            {
                throw new InvalidDataException($"Op at cursor {committed.Cursor} does not follow cursor {_cursor}: the reader would miss ops.");
            }

            var op = committed.Op;
            switch (op.KindCase)
            {
                case Op.KindOneofCase.Put:
                    SetDocument(op.Put.Collection, op.Put.Key, op.Put.Value, op.Put.ContentType, committed.Cursor);
                    break;
                case Op.KindOneofCase.Append:
                    SetDocument(op.Append.Collection, committed.Cursor.ToString(CultureInfo.InvariantCulture), op.Append.Value, op.Append.ContentType, committed.Cursor);
                    break;
                case Op.KindOneofCase.Delete:
                    RemoveDocument(op.Delete.Collection, op.Delete.Key);
                    break;
            }

            _cursor = committed.Cursor;
            _head = Math.Max(_head, _cursor);
            _loaded = true;
            MarkChanged();
        }

        Changed?.Invoke(this, EventArgs.Empty);
    }

    private void ApplySnapshotChunk(Snapshot chunk)
    {
        Document[]? complete = null;
        lock (_gate)
        {
            // A snapshot cut off by a disconnect starts again (possibly at another cursor).
            if (_pendingSnapshot is null || _pendingSnapshotCursor != chunk.Cursor)
            {
                _pendingSnapshot = new();
                _pendingSnapshotCursor = chunk.Cursor;
            }

            foreach (var d in chunk.Documents)
            {
                _pendingSnapshot[(d.Collection, d.Key)] = d;
            }

            if (chunk.LastChunk)
            {
                complete = _pendingSnapshot.Values.ToArray();
                _pendingSnapshot = null;
            }
        }

        if (complete is not null)
        {
            ApplySnapshot(chunk.Cursor, complete);
        }
    }

    private void SetDocument(string collection, string key, ByteString value, string contentType, ulong cursor)
    {
        switch (collection)
        {
            case AgentSessionProfile.SessionCollection when key == AgentSessionProfile.SessionKey:
                if (TryParse(Session.Parser, AgentSessionProfile.SessionContentType, collection, key, value, contentType, cursor) is { } session)
                {
                    _session = session;
                }

                break;
            case AgentSessionProfile.MessagesCollection:
                if (TryParse(Message.Parser, AgentSessionProfile.MessageContentType, collection, key, value, contentType, cursor) is { } message)
                {
                    _messages[key] = message;
                }

                break;
            case AgentSessionProfile.PartsCollection:
                if (!AgentSessionProfile.TryParsePartKey(key, out _, out _))
                {
                    Skip(collection, key, cursor, "a part key is {messageId}/{partId}");
                }
                else if (TryParse(Part.Parser, AgentSessionProfile.PartContentType, collection, key, value, contentType, cursor) is { } part)
                {
                    _parts[key] = part;
                }

                break;
            case AgentSessionProfile.DiffsCollection:
                if (TryParse(FileDiff.Parser, AgentSessionProfile.FileDiffContentType, collection, key, value, contentType, cursor) is { } diff)
                {
                    // Appended diffs are keyed by their cursor; a diff Put under another key sorts by where it was written.
                    var order = ulong.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var c) ? c : cursor;
                    _diffs[key] = new CommittedDiff(order, diff);
                }

                break;
            case AgentSessionProfile.ModelsCollection when key == AgentSessionProfile.ModelsKey:
                if (TryParse(ModelList.Parser, AgentSessionProfile.ModelListContentType, collection, key, value, contentType, cursor) is { } models)
                {
                    _models = models;
                }

                break;
            case AgentSessionProfile.SessionCollection or AgentSessionProfile.ModelsCollection:
                Skip(collection, key, cursor, $"the profile uses only key '{(collection == AgentSessionProfile.SessionCollection ? AgentSessionProfile.SessionKey : AgentSessionProfile.ModelsKey)}' here");
                break;
        }
    }

    private void RemoveDocument(string collection, string key)
    {
        switch (collection)
        {
            case AgentSessionProfile.SessionCollection when key == AgentSessionProfile.SessionKey:
                _session = null;
                break;
            case AgentSessionProfile.MessagesCollection:
                _messages.Remove(key);
                break;
            case AgentSessionProfile.PartsCollection:
                _parts.Remove(key);
                break;
            case AgentSessionProfile.DiffsCollection:
                _diffs.Remove(key);
                break;
            case AgentSessionProfile.ModelsCollection when key == AgentSessionProfile.ModelsKey:
                _models = null;
                break;
        }
    }

    private T? TryParse<T>(MessageParser<T> parser, string expectedContentType, string collection, string key, ByteString value, string contentType, ulong cursor)
        where T : class, IMessage<T>
    {
        if (contentType.Length > 0 && !string.Equals(contentType.Trim(), expectedContentType, StringComparison.OrdinalIgnoreCase))
        {
            Skip(collection, key, cursor, $"content type '{contentType}', expected '{expectedContentType}'");
            return null;
        }

        try
        {
            return parser.ParseFrom(value);
        }
        catch (InvalidProtocolBufferException ex)
        {
            Skip(collection, key, cursor, "not a valid " + typeof(T).Name + ": " + ex.Message);
            return null;
        }
    }

    private void Skip(string collection, string key, ulong cursor, string reason)
    {
        _skippedCount++;
        _skipped.Enqueue(new SkippedRecord(collection, key, cursor, reason));
        while (_skipped.Count > MaxSkippedKept)
        {
            _skipped.Dequeue();
        }
    }

    private AgentSessionState BuildState()
    {
        var messages = _messages
            .OrderBy(kv => kv.Value.CreatedAt?.Seconds ?? long.MinValue)
            .ThenBy(kv => kv.Value.CreatedAt?.Nanos ?? 0)
            .ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => kv.Value.Clone())
            .ToArray();
        var parts = new Dictionary<string, IReadOnlyList<Part>>(StringComparer.Ordinal);
        List<Part>? run = null;
        string? runMessage = null;
        foreach (var (key, part) in _parts) // ordered by key: one message's parts are adjacent
        {
            AgentSessionProfile.TryParsePartKey(key, out var messageId, out _);
            if (messageId != runMessage)
            {
                runMessage = messageId;
                if (!parts.TryGetValue(messageId, out var existing))
                {
                    parts[messageId] = existing = new List<Part>();
                }

                run = (List<Part>)existing;
            }

            run!.Add(part.Clone());
        }

        var diffs = _diffs.Values.OrderBy(d => d.Cursor).Select(d => d with { Diff = d.Diff.Clone() }).ToArray();
        var models = _models?.Models.Select(m => m.Clone()).ToArray() ?? [];
        return new AgentSessionState(_cursor, _session?.Clone(), messages, parts, diffs, models, _models?.DefaultModel?.Clone());
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
