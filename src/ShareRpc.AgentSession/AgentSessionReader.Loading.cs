// AgentSessionReader: reading the share (loading a snapshot, following the log) and waiting for a state.
using ShareRpc.Client;
using Sharerpc.V1;

namespace ShareRpc.AgentSession;

public sealed partial class AgentSessionReader
{
    /// <summary>
    /// The session as it is now, from a fresh snapshot (see <see cref="LoadSnapshotAsync"/>), read
    /// <paramref name="pageSize"/> documents per page (0: the server's default page size).
    /// </summary>
    public static Task<AgentSessionState> ReadSnapshotAsync(ShareRpcClient client, string sturdyRef, int pageSize = 0, CancellationToken cancellationToken = default) =>
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
}
