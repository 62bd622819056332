using Orleans.Runtime;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

[Collection(ClusterTestGroup.Name)]
public sealed class ActivationLifetimeTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Completed_transfer_records_leave_memory_after_the_movement_and_after_every_later_read()
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("life"), 4, 1_000_000);
        var management = fixture.Client.GetGrain<IManagementGrain>(0);
        var before = await TransferActivations(management);

        const int transfers = 200;
        var results = await Task.WhenAll(Enumerable.Range(0, transfers).Select(i =>
            ledger.Execute(new TransferRequest(Ledger.NewId("life-t"), ids[i % 4], ids[(i + 1) % 4], 1, "USD"))));
        Assert.All(results, r => Assert.Equal(TransferStatus.Committed, r.Status));

        // Reads, replays and conflicting reuses of the keys, and reads of keys never used, as
        // clients and the load generator's final check make them.
        var client = fixture.Client;
        await Task.WhenAll(results.Select(async r =>
        {
            Assert.Equal(TransferStatus.Committed, (await client.GetTransfer(r.Request.TransferId).GetResult())!.Status);
            Assert.True((await ledger.Execute(r.Request)).Replayed);
            Assert.Equal(RejectionReason.IdempotencyKeyReused, (await ledger.Execute(r.Request with { AmountMinor = 2 })).Reason);
            Assert.Null(await client.GetTransfer(Ledger.NewId("never")).GetResult());
        }));

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        int after;
        while ((after = await TransferActivations(management)) > before + 10 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.True(after <= before + 10, $"{after - before} transfer records are still activated after {transfers} movements and their reads.");
    }

    [Fact]
    public async Task Concurrent_retries_of_one_key_all_get_its_outcome_while_its_record_leaves_memory()
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

    [Fact]
    public async Task A_record_read_before_its_key_is_used_stays_while_its_movement_is_in_flight()
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("early"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("early-t"), ids[0], ids[1], 100, "USD");
        var record = fixture.Client.GetTransfer(request.TransferId);

        // A read of an unused key schedules the record's release; the key is then used at once.
        Assert.Null(await record.GetResult());
        var ticket = await record.Begin(request);
        Assert.NotNull(ticket.Lease);

        // Past the release: the activation still holds this driver's lease, so the movement in
        // flight was not dropped from memory under its driver.
        await Task.Delay(TransferGrain.IdleRelease + TimeSpan.FromSeconds(1));
        Assert.NotNull(await record.RenewLease(ticket.LeaseId));

        // This test's driver stops here; recovery finishes the movement once the lease has run out.
        var result = await ledger.WaitForRecordedEnd(request.TransferId, TimeSpan.FromSeconds(30));
        Assert.Equal(TransferStatus.Committed, result.Status);
    }

    private static async Task<int> TransferActivations(IManagementGrain management)
    {
        var stats = await management.GetSimpleGrainStatistics();
        return stats.Where(s => s.GrainType.Contains("TransferGrain", StringComparison.Ordinal) && !s.GrainType.Contains("Coordinator", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }
}
