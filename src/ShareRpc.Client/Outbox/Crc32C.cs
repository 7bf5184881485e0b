using System.Buffers.Binary;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace ShareRpc.Client.Outbox;

/// <summary>
/// CRC-32C (Castagnoli), the checksum of each op row (docs/client.md, "Integrity"). A CRC finds
/// flipped bits and torn writes, which is all an op row needs (no adversary writes the outbox, and
/// one who could would rewrite the sum too); it runs on the CPU's CRC32 instruction where there is
/// one (x64 SSE4.2, ARMv8), 8 bytes a step, since every op is summed at enqueue and again at sealing.
/// </summary>
internal static class Crc32C
{
    private const uint Polynomial = 0x82F63B78; // reflected Castagnoli
    private static readonly uint[] s_table = MakeTable();

    /// <summary>The checksum stored with an op row: over its seq (8 bytes, little-endian) and its bytes.</summary>
    public static uint OfOpRow(ulong seq, ReadOnlySpan<byte> op)
    {
        Span<byte> seqBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(seqBytes, seq);
        return ~Update(Update(~0u, seqBytes), op);
    }

    private static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported)
        {
            ulong c = crc;
            while (data.Length >= 8)
            {
                c = Sse42.X64.Crc32(c, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }

            crc = (uint)c;
        }
        else if (Crc32.Arm64.IsSupported)
        {
            while (data.Length >= 8)
            {
                crc = Crc32.Arm64.ComputeCrc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }
        }

        foreach (var b in data)
        {
            crc = s_table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }

    private static uint[] MakeTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            }

            table[i] = c;
        }

        return table;
    }
}
