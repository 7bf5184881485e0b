namespace ShareRpc.Client.Transport;

/// <summary>
/// Jittered exponential backoff between reconnects (docs/client.md): a delay drawn from
/// [d/2, d], d doubling from InitialBackoff up to MaxBackoff, so that many clients reconnecting
/// after a server restart spread out. Waits on the client's <see cref="TimeProvider"/>.
/// </summary>
internal sealed class Backoff(ShareRpcClientOptions options)
{
    private TimeSpan _next = options.InitialBackoff;

    /// <summary>After progress: the next wait starts small again.</summary>
    public void Reset() => _next = options.InitialBackoff;

    public Task WaitAsync(CancellationToken cancellationToken) => WaitAsync(cancellationToken, out _);

    /// <summary>As <see cref="WaitAsync(CancellationToken)"/>, saying how long it waits (for the log).</summary>
    public Task WaitAsync(CancellationToken cancellationToken, out TimeSpan delay)
    {
        var half = _next / 2;
        delay = half + TimeSpan.FromTicks(Random.Shared.NextInt64(half.Ticks + 1));
        _next = _next * 2 > options.MaxBackoff ? options.MaxBackoff : _next * 2;
        return Task.Delay(delay, options.TimeProvider, cancellationToken);
    }
}
