using System.Buffers;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Transactor.Grains;
using Xunit.Abstractions;

namespace Transactor.Tests.Cluster;

/// <summary>
/// A recovery shard's byte budget for large listings (docs/transfers.md, "Limits"). Every write of a
/// shard's list carries every movement it lists, so movements with large listings (a linked transfer
/// of 100 legs, full metadata) are listed only up to <see cref="RecoveryShardGrain.MaxLargeListedBytes"/>
/// at once: beyond it a new one is refused with nothing recorded, while movements of ordinary size and
/// retries of listed ones go on, and a large one fits again once one has ended.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class ShardBudgetTests(ClusterFixture fixture, ITestOutputHelper output)
{
    /// <summary>A shard key outside <see cref="RecoveryShards.Count"/>: no id hashes to it, so nothing drives what the test lists there.</summary>
    private const long BudgetShard = 3_000 + RecoveryShards.Count;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_shard_lists_large_movements_up_to_its_byte_budget_and_refuses_more_until_one_ends()
    {
        var shard = fixture.Client.GetGrain<IRecoveryShardGrain>(BudgetShard);
        var listed = new List<TransferRequest>();
        TransferRequest? refused = null;
        while (refused is null)
        {
            Assert.True(listed.Count < 64, $"{listed.Count} large movements listed on one shard, none refused");
            var request = Largest();
            try
            {
                Assert.Equal(1, (await shard.Begin(request)).Epoch);
                listed.Add(request);
            }
            catch (LedgerOverloadedException)
            {
                refused = request;
            }
        }

        // Listed up to the budget, and refused only when the next one would not fit (listings of
        // equal requests differ by a few bytes at most: the ids' digits and the listing time).
        var bytes = ListingBytes(listed[0]);
        Assert.True(bytes > RecoveryShardGrain.LargeListingBytes, $"a listing of {bytes} bytes is not large");
        Assert.True(listed.Count * (bytes - 16) <= RecoveryShardGrain.MaxLargeListedBytes, $"{listed.Count} listings of about {bytes} bytes listed at once");
        Assert.True((listed.Count + 1) * (bytes + 16) > RecoveryShardGrain.MaxLargeListedBytes, $"refused after {listed.Count} listings of about {bytes} bytes");
        Assert.Null(await shard.GetResult(refused.TransferId));
        output.WriteLine($"{listed.Count} listings of {bytes} bytes listed, the next refused");

        // A movement of ordinary size is still listed, and a retry of a listed one is answered from its listing.
        var small = new TransferRequest(Ledger.NewId("small"), "acct-budget-a", "acct-budget-b", 10, "USD");
        Assert.Equal(1, (await shard.Begin(small)).Epoch);
        var retry = await shard.Begin(listed[0]);
        Assert.Equal((false, false, (TimeSpan?)null), (retry.Conflict, retry.Completed, retry.Lease));

        // Still full for another large one, until one ends.
        await Assert.ThrowsAsync<LedgerOverloadedException>(() => shard.Begin(Largest()));
        await End(shard, listed[0]);
        var next = Largest();
        Assert.Equal(1, (await shard.Begin(next)).Epoch);

        foreach (var request in listed.Skip(1).Append(next).Append(small))
        {
            await End(shard, request);
        }

        Assert.Empty(await shard.List(100));
    }

    /// <summary>
    /// About the largest movement the API lets through: 100 legs between accounts with 64-character
    /// ids, and 16 metadata keys of 64 characters with values of 256.
    /// </summary>
    private static TransferRequest Largest()
    {
        var prefix = Guid.NewGuid().ToString("N");
        string Account(int i) => $"{prefix}-{i:D3}-".PadRight(Ids.MaxAccountIdLength, 'x');
        var metadata = MetadataMap.Of(Enumerable.Range(0, MetadataMap.MaxEntries)
            .Select(i => KeyValuePair.Create($"k{i:D2}".PadRight(MetadataMap.MaxKeyLength, 'k'), new string('v', MetadataMap.MaxValueLength))));
        return TransferRequest.Linked(Ledger.NewId("big"), Enumerable.Range(0, LinkedTransfers.MaxLegs).Select(i => new TransferLeg(Account(i), Account(i + 100), 1, "USD")), metadata);
    }

    /// <summary>The size of <paramref name="request"/>'s listing in a shard's stored list (with its length prefix), with its first lease.</summary>
    private int ListingBytes(TransferRequest request)
    {
        var serializer = fixture.Client.ServiceProvider.GetRequiredService<Serializer>();
        var now = DateTimeOffset.UtcNow;
        var listing = new ShardListing(request.TransferId, now, new TransferRecord(request, TransferStatus.Pending, RejectionReason.None, now, null), 1);
        var bytes = new ArrayBufferWriter<byte>();
        RecoveryShardState.Append(serializer, listing, bytes);
        return bytes.WrittenCount;
    }

    /// <summary>Ends a movement the test listed (and holds the first lease of): rejected, with no account touched.</summary>
    private static async Task End(IRecoveryShardGrain shard, TransferRequest request)
    {
        Assert.NotNull(await shard.Decide(request.TransferId, RejectionReason.AccountNotFound, 1));
        await shard.Complete(request.TransferId, null, null);
        var ended = await shard.WaitForResult(request.TransferId, Timeout);
        Assert.Equal(TransferStatus.Rejected, ended?.Status);
    }
}
