using Transactor.Cli;

namespace Transactor.Tests.Batch;

public sealed class TxIdSetTests
{
    [Fact]
    public void Sequential_ids_fill_blocks_past_the_array_limit_into_bitmaps()
    {
        var set = new TxIdSet();
        const uint Count = (1 << 16) * 3 + 17;

        for (uint id = 0; id < Count; id++)
        {
            Assert.True(set.Add(id), $"id {id} reported present before it was added");
        }

        Assert.Equal(Count, set.Count);
        for (uint id = 0; id < Count; id++)
        {
            Assert.False(set.Add(id), $"id {id} added twice");
        }

        Assert.False(set.Contains(Count));
        Assert.Equal(Count, set.Count);
    }

    [Fact]
    public void Scattered_ids_agree_with_a_hash_set()
    {
        var random = new Random(11);
        var set = new TxIdSet();
        var expected = new HashSet<uint>();

        for (var i = 0; i < 200_000; i++)
        {
            // Half over all of u32, half crowded into two blocks so they cross the array limit in random order.
            var id = random.Next(2) == 0 ? (uint)random.NextInt64(0, uint.MaxValue + 1L) : (uint)random.Next(0x1_0000, 0x3_0000);
            Assert.Equal(expected.Add(id), set.Add(id));
        }

        Assert.Equal(expected.Count, set.Count);
        for (var i = 0; i < 100_000; i++)
        {
            var id = (uint)random.NextInt64(0, uint.MaxValue + 1L);
            Assert.Equal(expected.Contains(id), set.Contains(id));
        }
    }

    [Fact]
    public void The_extremes_of_u32_are_ids_like_any_other()
    {
        var set = new TxIdSet();

        Assert.True(set.Add(uint.MaxValue));
        Assert.True(set.Add(0));
        Assert.False(set.Add(uint.MaxValue));
        Assert.True(set.Contains(0));
        Assert.False(set.Contains(1));
    }
}
