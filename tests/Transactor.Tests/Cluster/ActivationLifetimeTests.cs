using Orleans.Runtime;

namespace Transactor.Tests.Cluster;

[Collection(ClusterTestGroup.Name)]
public sealed class ActivationLifetimeTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Movements_and_every_later_read_of_their_keys_activate_no_grain_per_key()
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("life"), 4, 1_000_000);
        var management = fixture.Client.GetGrain<IManagementGrain>(0);
        var before = await Activations(management);

        const int transfers = 200;
        var results = await Task.WhenAll(Enumerable.Range(0, transfers).Select(i =>
            ledger.Execute(new TransferRequest(Ledger.NewId("life-t"), ids[i % 4], ids[(i + 1) % 4], 1, "USD"))));
        Assert.All(results, r => Assert.Equal(TransferStatus.Committed, r.Status));

        // Reads, replays and conflicting reuses of the keys, and reads of keys never used, as
        // clients and the load generator's final check make them.
        var client = fixture.Client;
        await Task.WhenAll(results.Select(async r =>
        {
            Assert.Equal(TransferStatus.Committed, (await client.GetTransferResult(r.Request.TransferId))!.Status);
            Assert.True((await ledger.Execute(r.Request)).Replayed);
            Assert.Equal(RejectionReason.IdempotencyKeyReused, (await ledger.Execute(r.Request with { AmountMinor = 2 })).Reason);
            Assert.Null(await client.GetTransferResult(Ledger.NewId("never")));
        }));

        // The recovery shards (16) hold what is in flight; nothing else stays per key.
        var after = await Activations(management);
        Assert.True(after <= before + RecoveryShards.Count, $"{after - before} grains were activated by {transfers} movements and {4 * transfers} reads and retries of their keys.");
    }

    [Fact]
    public async Task Concurrent_retries_of_one_key_all_get_its_outcome()
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("burst"), 2, 1_000);
        for (var round = 0; round < 20; round++)
        {
            var request = new TransferRequest(Ledger.NewId("burst-t"), ids[0], ids[1], 1, "USD");

            var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => ledger.Coordinator.Execute(request)));

            Assert.All(results, r => Assert.Equal(TransferStatus.Committed, r.Status));
            Assert.Single(results, r => !r.Replayed);
        }

        var balances = await ledger.Snapshots(ids);
        Assert.Equal([980L, 1_020L], balances.Select(b => b.AvailableMinor));
    }

    /// <summary>Every activation but the coordinators: stateless workers, a few per silo, whatever the load.</summary>
    private static async Task<int> Activations(IManagementGrain management)
    {
        var stats = await management.GetSimpleGrainStatistics();
        return stats.Where(s => !s.GrainType.Contains("Coordinator", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }
}
