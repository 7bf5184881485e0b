using System.Runtime.CompilerServices;

namespace ShareRpc.Wire;

/// <summary>Reads a stream of messages; MoveNext is false at the end, throws <see cref="RpcException"/> on failure.</summary>
public interface IAsyncStreamReader<out T>
{
    T Current { get; }

    Task<bool> MoveNext(CancellationToken cancellationToken = default);
}

/// <summary>
/// A reader that can also take a message that has already arrived without waiting, so a server
/// can gather what is queued (one group commit, one flush) before it answers.
/// </summary>
public interface IBufferedStreamReader<out T> : IAsyncStreamReader<T>
{
    /// <summary>True and <see cref="IAsyncStreamReader{T}.Current"/> set when a whole message is already buffered.</summary>
    bool TryMoveNextBuffered();
}

/// <summary>Writes a stream of messages.</summary>
public interface IAsyncStreamWriter<in T>
{
    Task WriteAsync(T message, CancellationToken cancellationToken = default);
}

/// <summary>The request side of a client- or duplex-streaming call.</summary>
public interface IClientStreamWriter<in T> : IAsyncStreamWriter<T>
{
    /// <summary>Half-closes the request stream (END_STREAM) once every written message is sent.</summary>
    Task CompleteAsync();
}

/// <summary>The response side of a server- or duplex-streaming handler.</summary>
public interface IServerStreamWriter<in T> : IAsyncStreamWriter<T>
{
    /// <summary>Frames the message into the response buffer without flushing, so several can share one flush.</summary>
    void WriteBuffered(T message);

    Task FlushAsync(CancellationToken cancellationToken = default);
}

public static class AsyncStreamReaderExtensions
{
    public static async IAsyncEnumerable<T> ReadAllAsync<T>(this IAsyncStreamReader<T> reader, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        while (await reader.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            yield return reader.Current;
        }
    }
}
