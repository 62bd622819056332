namespace Transactor.Cli;

/// <summary>
/// A set of 32-bit transaction ids, compact whether ids are dense or scattered (the idea of Roaring
/// bitmaps): ids are split into 65,536 blocks of 65,536 by their high 16 bits, and a block is created
/// on its first id as a sorted array of low halves (2 bytes an id), turned into an 8 KiB bitmap once it
/// holds <see cref="ArrayLimit"/> ids, where the bitmap becomes the smaller of the two.
/// </summary>
/// <remarks>
/// Memory: a 512 KiB directory, plus at most about 4 bytes an id (arrays grow by doubling) and at most
/// 8 KiB a block. Sequential ids cost 1 bit each (5,000,000 ids: 77 bitmaps, 616 KiB); 5,000,000 ids
/// scattered over all of u32 cost about 76 ids a block, about 20 MiB in all. The whole u32 range would
/// need 512 MiB, but only once more than 268 million ids are present. A flat bitmap would take 512 MiB
/// always; a <c>HashSet&lt;uint&gt;</c> about 16 to 32 bytes an id.
/// </remarks>
public sealed class TxIdSet
{
    /// <summary>Above this many ids a block's sorted array (2 bytes an id) would be larger than its 8 KiB bitmap.</summary>
    public const int ArrayLimit = 4096;

    private const int BlockCount = 1 << 16;
    private const int InitialArrayLength = 16;
    private const int BitmapWords = (1 << 16) / 64;

    private readonly Block?[] _blocks = new Block?[BlockCount];

    /// <summary>How many ids the set holds.</summary>
    public long Count { get; private set; }

    /// <summary>Adds <paramref name="id"/>; false when it was present already.</summary>
    public bool Add(uint id)
    {
        var block = _blocks[id >> 16] ??= new Block();
        if (!block.Add((ushort)id))
        {
            return false;
        }

        Count++;
        return true;
    }

    /// <summary>True when <paramref name="id"/> is in the set.</summary>
    public bool Contains(uint id) => _blocks[id >> 16]?.Contains((ushort)id) ?? false;

    private sealed class Block
    {
        private ushort[] _sorted = new ushort[InitialArrayLength];
        private ulong[]? _bits;
        private int _count;

        public bool Add(ushort low)
        {
            if (_bits is not null)
            {
                ref var word = ref _bits[low >> 6];
                var mask = 1UL << (low & 63);
                if ((word & mask) != 0)
                {
                    return false;
                }

                word |= mask;
                return true;
            }

            // Ids mostly arrive in increasing order: appending needs no search.
            int index;
            if (_count == 0 || low > _sorted[_count - 1])
            {
                index = _count;
            }
            else
            {
                index = Array.BinarySearch(_sorted, 0, _count, low);
                if (index >= 0)
                {
                    return false;
                }

                index = ~index;
            }

            if (_count == ArrayLimit)
            {
                ToBitmap();
                return Add(low);
            }

            if (_count == _sorted.Length)
            {
                Array.Resize(ref _sorted, Math.Min(_sorted.Length * 2, ArrayLimit));
            }

            Array.Copy(_sorted, index, _sorted, index + 1, _count - index);
            _sorted[index] = low;
            _count++;
            return true;
        }

        public bool Contains(ushort low) => _bits is not null
            ? (_bits[low >> 6] & (1UL << (low & 63))) != 0
            : Array.BinarySearch(_sorted, 0, _count, low) >= 0;

        private void ToBitmap()
        {
            _bits = new ulong[BitmapWords];
            for (var i = 0; i < _count; i++)
            {
                _bits[_sorted[i] >> 6] |= 1UL << (_sorted[i] & 63);
            }

            _sorted = [];
        }
    }
}
