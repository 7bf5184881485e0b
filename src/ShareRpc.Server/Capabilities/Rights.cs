using Sharerpc.V1;

namespace ShareRpc.Server.Capabilities;

/// <summary>The rights a capability holds, as a bit set (the wire carries them as repeated <see cref="Right"/>).</summary>
[Flags]
internal enum Rights
{
    None = 0,
    Read = 1,
    Append = 2,
    Delegate = 4,
    Revoke = 8,
    All = Read | Append | Delegate | Revoke,
}

/// <summary>Conversions between <see cref="Rights"/> and the protocol's <see cref="Right"/> enum.</summary>
internal static class RightsFormat
{
    /// <summary>Converts wire rights to a set; fails on RIGHT_UNSPECIFIED or an unknown value.</summary>
    public static bool TryFromProto(IEnumerable<Right> rights, out Rights result, out string? error)
    {
        result = Rights.None;
        error = null;
        foreach (var r in rights)
        {
            var bit = r switch
            {
                Right.Read => Rights.Read,
                Right.Append => Rights.Append,
                Right.Delegate => Rights.Delegate,
                Right.Revoke => Rights.Revoke,
                _ => Rights.None,
            };
            if (bit == Rights.None)
            {
                error = $"unknown or unspecified right {(int)r}";
                result = Rights.None;
                return false;
            }
            result |= bit;
        }
        return true;
    }

    /// <summary>The wire form, in the enum's order.</summary>
    public static IReadOnlyList<Right> ToProto(this Rights rights)
    {
        var list = new List<Right>(4);
        if ((rights & Rights.Read) != 0) list.Add(Right.Read);
        if ((rights & Rights.Append) != 0) list.Add(Right.Append);
        if ((rights & Rights.Delegate) != 0) list.Add(Right.Delegate);
        if ((rights & Rights.Revoke) != 0) list.Add(Right.Revoke);
        return list;
    }

    /// <summary>True when every right of <paramref name="subset"/> is in <paramref name="of"/>.</summary>
    public static bool IsSubsetOf(this Rights subset, Rights of) => (subset & ~of) == Rights.None;
}
