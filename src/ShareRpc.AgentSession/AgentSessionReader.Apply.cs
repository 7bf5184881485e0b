// AgentSessionReader: applying snapshots and ops to the profile documents, and building the state from them.
using System.Globalization;
using Google.Protobuf;
using Sharerpc.Agent.V1;
using Sharerpc.V1;

namespace ShareRpc.AgentSession;

public sealed partial class AgentSessionReader
{
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
}
