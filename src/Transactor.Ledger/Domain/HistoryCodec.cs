using System.Buffers;
using System.Buffers.Binary;
using Orleans.Serialization;

namespace Transactor.Domain;

/// <summary>
/// Encodes history entries for storage, once each. An account keeps its newest entries as one run
/// of bytes (<see cref="AccountState.HistoryTail"/>): each entry is encoded into it when it is
/// recorded, as a <see cref="Frames">frame</see>. Each later write of the account's row, and the
/// write of the page that finally holds the entry, copies those bytes; none encodes the entry
/// again, and the entries make no objects that live on in the collector's heap.
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
        Frames.Append(serializer, entry, scratch);
        var end = checked(length + scratch.WrittenCount);
        if (end > buffer.Length)
        {
            Array.Resize(ref buffer, Math.Max(end, Math.Max(1024, buffer.Length * 2)));
        }

        scratch.WrittenSpan.CopyTo(buffer.AsSpan(length));
        length = end;
        if (scratch.Capacity > MaxScratchBytes)
        {
            t_scratch = null;
        }
    }

    /// <summary>The framed entries of <paramref name="frames"/>, decoded, oldest first.</summary>
    public List<HistoryEntry> Decode(ReadOnlySpan<byte> frames) => Frames.Decode(serializer, frames);

    /// <summary>The first framed entry of <paramref name="frames"/>, decoded.</summary>
    public HistoryEntry DecodeFirst(ReadOnlySpan<byte> frames) =>
        serializer.Deserialize(Frames.Next(frames, out _)) ?? throw new InvalidDataException("A stored history entry decodes to nothing.");

    /// <summary>A page row's entries, whether it was written as framed entries or (by versions before them) as entries.</summary>
    public List<HistoryEntry> Entries(HistoryPage page)
    {
        ArgumentNullException.ThrowIfNull(page);
        return page.Encoded is { } encoded ? Decode(encoded) : page.Entries;
    }
}
