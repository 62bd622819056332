using System.Buffers;
using System.Buffers.Binary;
using Orleans.Serialization;

namespace Transactor.Domain;

/// <summary>
/// Encodes history entries for storage, once each. An account keeps its newest entries as one run
/// of bytes (<see cref="AccountState.HistoryTail"/>): each entry is encoded into it when it is
/// recorded, as a little-endian 32-bit length and Orleans' encoding of the entry (version-tolerant
/// by field id), the framing the recovery shards' lists use too. Each later write of the account's
/// row, and the write of the page that finally holds the entry, copies those bytes; none encodes the
/// entry again, and the entries make no objects that live on in the collector's heap.
/// </summary>
public sealed class HistoryCodec(Serializer<HistoryEntry> serializer)
{
    /// <summary>The largest scratch buffer a thread keeps between entries.</summary>
    private const int MaxScratchBytes = 64 << 10;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_scratch;

    /// <summary>Appends <paramref name="entry"/>, framed, at <paramref name="length"/> in <paramref name="buffer"/>, growing it when needed.</summary>
    public void Append(HistoryEntry entry, ref byte[] buffer, ref int length)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(256);
        scratch.ResetWrittenCount();
        serializer.Serialize(entry, scratch);
        var end = checked(length + sizeof(int) + scratch.WrittenCount);
        if (end > buffer.Length)
        {
            Array.Resize(ref buffer, Math.Max(end, Math.Max(1024, buffer.Length * 2)));
        }

        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(length), scratch.WrittenCount);
        scratch.WrittenSpan.CopyTo(buffer.AsSpan(length + sizeof(int)));
        length = end;
        if (scratch.Capacity > MaxScratchBytes)
        {
            t_scratch = null;
        }
    }

    /// <summary>The framed entries of <paramref name="frames"/>, decoded, oldest first.</summary>
    public List<HistoryEntry> Decode(ReadOnlySpan<byte> frames)
    {
        var entries = new List<HistoryEntry>();
        while (!frames.IsEmpty)
        {
            var entry = Next(frames, out frames);
            entries.Add(serializer.Deserialize(entry) ?? throw new LedgerInvariantException("A stored history entry decodes to nothing."));
        }

        return entries;
    }

    /// <summary>The first framed entry of <paramref name="frames"/>, decoded.</summary>
    public HistoryEntry DecodeFirst(ReadOnlySpan<byte> frames) =>
        serializer.Deserialize(Next(frames, out _)) ?? throw new LedgerInvariantException("A stored history entry decodes to nothing.");

    /// <summary>A page row's entries, whether it was written as framed entries or (by versions before them) as entries.</summary>
    public List<HistoryEntry> Entries(HistoryPage page)
    {
        ArgumentNullException.ThrowIfNull(page);
        return page.Encoded is { } encoded ? Decode(encoded) : page.Entries;
    }

    /// <summary>Framed entries in <paramref name="frames"/>.</summary>
    public static int Count(ReadOnlySpan<byte> frames)
    {
        var count = 0;
        while (!frames.IsEmpty)
        {
            Next(frames, out frames);
            count++;
        }

        return count;
    }

    /// <summary>Bytes the first <paramref name="count"/> framed entries of <paramref name="frames"/> take.</summary>
    public static int LengthOf(ReadOnlySpan<byte> frames, int count)
    {
        var length = 0;
        for (var i = 0; i < count; i++)
        {
            Next(frames[length..], out var rest);
            length = frames.Length - rest.Length;
        }

        return length;
    }

    /// <summary>The first framed entry's encoding in <paramref name="frames"/>; <paramref name="rest"/>: the frames after it.</summary>
    private static ReadOnlySpan<byte> Next(ReadOnlySpan<byte> frames, out ReadOnlySpan<byte> rest)
    {
        if (frames.Length < sizeof(int) || BinaryPrimitives.ReadInt32LittleEndian(frames) is var length && (length < 0 || length > frames.Length - sizeof(int)))
        {
            throw new LedgerInvariantException($"Stored history entries are cut short: {frames.Length} bytes left do not hold the next entry.");
        }

        rest = frames[(sizeof(int) + length)..];
        return frames.Slice(sizeof(int), length);
    }
}
