using System.Globalization;

namespace ShareRpc.Wire;

/// <summary>
/// The grpc-timeout header (PROTOCOL-HTTP2.md "Requests"): TimeoutValue is at most 8 ASCII
/// digits, TimeoutUnit one of H M S m u n.
/// </summary>
public static class GrpcTimeout
{
    private const long MaxValue = 99_999_999;

    // Largest unit first; Format picks the finest unit that fits in 8 digits.
    private static readonly (char Unit, long Ticks)[] Units =
    {
        ('n', 0), // nanoseconds: 100 per tick, handled specially
        ('u', 10),
        ('m', TimeSpan.TicksPerMillisecond),
        ('S', TimeSpan.TicksPerSecond),
        ('M', TimeSpan.TicksPerMinute),
        ('H', TimeSpan.TicksPerHour),
    };

    /// <summary>Parses a header value; false for anything malformed (the call then has no deadline... see caller).</summary>
    public static bool TryParse(string? value, out TimeSpan timeout)
    {
        timeout = default;
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9)
        {
            return false;
        }

        var digits = value.AsSpan(0, value.Length - 1);
        foreach (var d in digits)
        {
            if (d < '0' || d > '9')
            {
                return false;
            }
        }

        var n = long.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
        long ticks;
        switch (value[^1])
        {
            case 'H': ticks = n * TimeSpan.TicksPerHour; break;
            case 'M': ticks = n * TimeSpan.TicksPerMinute; break;
            case 'S': ticks = n * TimeSpan.TicksPerSecond; break;
            case 'm': ticks = n * TimeSpan.TicksPerMillisecond; break;
            case 'u': ticks = n * 10; break;
            // Round up: a deadline must never be shortened to zero by our tick resolution.
            case 'n': ticks = (n + 99) / 100; break;
            default: return false;
        }

        timeout = TimeSpan.FromTicks(ticks);
        return true;
    }

    /// <summary>Formats a positive timeout in the finest unit that fits in 8 digits, rounding up.</summary>
    public static string Format(TimeSpan timeout)
    {
        var ticks = Math.Max(timeout.Ticks, 0);
        // nanoseconds
        if (ticks <= MaxValue / 100)
        {
            return (ticks * 100).ToString(CultureInfo.InvariantCulture) + "n";
        }

        for (var i = 1; i < Units.Length; i++)
        {
            var (unit, per) = Units[i];
            var v = (ticks + per - 1) / per;
            if (v <= MaxValue)
            {
                return v.ToString(CultureInfo.InvariantCulture) + unit;
            }
        }

        return MaxValue.ToString(CultureInfo.InvariantCulture) + "H";
    }
}
