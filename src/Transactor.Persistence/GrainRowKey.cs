using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Transactor.Persistence;

/// <summary>
/// The identity columns of a grain-state row, split from a <see cref="GrainId"/> exactly as Orleans'
/// ADO.NET grain storage splits it, so both providers address the same row: a GUID key is two
/// 64-bit halves (its <see cref="Guid.ToByteArray()"/> bytes), an integer key is <c>N1</c>, either with
/// its key extension in <c>Ext</c>; any other key is the whole key string in <c>Ext</c>.
/// </summary>
internal readonly record struct GrainRowKey(long N0, long N1, string? Ext, KeyKind Kind)
{
    public static GrainRowKey From(GrainId grainId)
    {
        if (grainId.TryGetGuidKey(out var guid, out var guidExt))
        {
            Span<byte> bytes = stackalloc byte[16];
            guid.TryWriteBytes(bytes);
            return new GrainRowKey(BinaryPrimitives.ReadInt64LittleEndian(bytes), BinaryPrimitives.ReadInt64LittleEndian(bytes[8..]), guidExt, KeyKind.Guid);
        }

        if (grainId.TryGetIntegerKey(out var integer, out var integerExt))
        {
            return new GrainRowKey(0, integer, integerExt, KeyKind.Integer);
        }

        return new GrainRowKey(0, 0, grainId.Key.ToString(), KeyKind.String);
    }

    /// <summary>
    /// The bytes Orleans' provider hashes into <c>grain_id_hash</c> (informational in Transactor's
    /// schema, stored the same anyway): the key's bytes, then the extension's UTF-8, all reversed.
    /// </summary>
    public byte[] HashBytes()
    {
        byte[] key = Kind switch
        {
            KeyKind.Integer => BitConverter.GetBytes(N1),
            KeyKind.Guid => GuidBytes(),
            _ => [],
        };
        var ext = Ext is null ? [] : Encoding.UTF8.GetBytes(Ext);
        var bytes = new byte[key.Length + ext.Length];
        key.CopyTo(bytes, 0);
        ext.CopyTo(bytes, key.Length);
        if (BitConverter.IsLittleEndian)
        {
            Array.Reverse(bytes);
        }

        return bytes;
    }

    public override string ToString() => Kind switch
    {
        KeyKind.Integer => N1.ToString(CultureInfo.InvariantCulture) + (Ext is null ? "" : "#" + Ext),
        KeyKind.Guid => new Guid(GuidBytes()).ToString() + (Ext is null ? "" : "#" + Ext),
        _ => Ext ?? "",
    };

    private byte[] GuidBytes()
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, N0);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), N1);
        return bytes;
    }
}

internal enum KeyKind
{
    Integer,
    Guid,
    String,
}
