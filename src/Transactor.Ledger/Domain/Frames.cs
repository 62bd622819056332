using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Orleans.Serialization;

namespace Transactor.Domain;

/// <summary>
/// Values stored as a run of frames, each a little-endian 32-bit length and Orleans' encoding of
/// one value (version-tolerant by field id): how an account's history tail and a recovery shard's
/// list keep their items, so that each item is encoded once, when it changes, and every later write
/// of its row copies bytes instead of serializing an object graph again.
/// </summary>
public static class Frames
{
    /// <summary>Appends <paramref name="value"/>, framed, to <paramref name="into"/>.</summary>
    public static void Append<T>(Serializer<T> serializer, T value, ArrayBufferWriter<byte> into)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        var start = Open(into);
        serializer.Serialize(value, into);
        Close(into, start);
    }

    /// <summary>Appends <paramref name="value"/>, framed, to <paramref name="into"/>.</summary>
    public static void Append<T>(Serializer serializer, T value, ArrayBufferWriter<byte> into)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        var start = Open(into);
        serializer.Serialize(value, into);
        Close(into, start);
    }

    /// <summary>Reserves a frame's length prefix; returns where the frame starts.</summary>
    private static int Open(ArrayBufferWriter<byte> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        var start = into.WrittenCount;
        into.GetSpan(sizeof(int));
        into.Advance(sizeof(int));
        return start;
    }

    /// <summary>Writes the length of the frame opened at <paramref name="start"/> into its prefix, in place (WrittenMemory is the writer's own buffer).</summary>
    private static void Close(ArrayBufferWriter<byte> into, int start) =>
        BinaryPrimitives.WriteInt32LittleEndian(MemoryMarshal.AsMemory(into.WrittenMemory).Span.Slice(start, sizeof(int)), into.WrittenCount - start - sizeof(int));

    /// <summary>The first frame's encoding in <paramref name="frames"/>; <paramref name="rest"/>: the frames after it.</summary>
    /// <exception cref="InvalidDataException">The bytes left do not hold a whole frame.</exception>
    public static ReadOnlySpan<byte> Next(ReadOnlySpan<byte> frames, out ReadOnlySpan<byte> rest)
    {
        if (frames.Length < sizeof(int) || BinaryPrimitives.ReadInt32LittleEndian(frames) is var length && (length < 0 || length > frames.Length - sizeof(int)))
        {
            throw new InvalidDataException($"Stored frames are cut short: the {frames.Length} bytes left do not hold the next one.");
        }

        rest = frames[(sizeof(int) + length)..];
        return frames.Slice(sizeof(int), length);
    }

    /// <summary>Every frame of <paramref name="frames"/>, decoded, in order.</summary>
    public static List<T> Decode<T>(Serializer<T> serializer, ReadOnlySpan<byte> frames)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        var values = new List<T>();
        while (!frames.IsEmpty)
        {
            values.Add(serializer.Deserialize(Next(frames, out frames)) ?? throw new InvalidDataException($"A stored frame decodes to no {typeof(T).Name}."));
        }

        return values;
    }

    /// <summary>The frames in <paramref name="frames"/>.</summary>
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

    /// <summary>Bytes the first <paramref name="count"/> frames of <paramref name="frames"/> take.</summary>
    public static int LengthOf(ReadOnlySpan<byte> frames, int count)
    {
        var rest = frames;
        for (var i = 0; i < count; i++)
        {
            Next(rest, out rest);
        }

        return frames.Length - rest.Length;
    }
}
