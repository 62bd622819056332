using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// What a database does that the in-memory store does not: answer a read late, and fail a write.
/// This class gives one silo a store that holds the answers of chosen reads until the test lets
/// them go, and fails chosen writes.
/// </summary>
public sealed class StoreFaultTests : OneSiloCluster<StoreFaultTests.SiloConfigurator>
{
    /// <summary>
    /// A database answers a read with the row as it was when the read ran, and the answer can
    /// arrive after the movement has ended.
    /// </summary>
    [Fact]
    public async Task A_retry_whose_read_of_the_row_predates_the_outcome_does_not_apply_the_movement_again()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("slow-read"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var shard = Cluster.Client.GetRecoveryShard(request.TransferId);
        // Both first reads of the key's row run at once and find no row; their answers are held.
        var first = FaultyRows.Hold(request.TransferId);
        var second = FaultyRows.Hold(request.TransferId);

        var original = ledger.Coordinator.Execute(request);
        await first.Read.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var retry = shard.Begin(request);
        await second.Read.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // The original lists the key, moves the money and completes, while the retry's answer waits.
        first.Answer.SetResult();
        Assert.Equal(TransferStatus.Committed, (await original).Status);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((await shard.List(100)).Contains(request.TransferId) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        // Then the retry learns that the row held nothing when it was read.
        second.Answer.SetResult();
        var ticket = await retry;

        Assert.True(ticket is { Completed: true, Lease: null }, $"a retry after the end must get the outcome, not a lease: {ticket}");
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    /// <summary>
    /// An account whose write fails holds in memory a change that storage does not: it must drop
    /// the change (its activation) and answer from storage, and the movement must still end once.
    /// </summary>
    [Fact]
    public async Task An_account_whose_write_fails_forgets_the_change_and_the_transfer_still_ends_once()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("failed-write"), 2, 1_000);
        var account = Cluster.Client.GetAccount(ids[0]);

        FaultyRows.FailNextWrite(account.GetGrainId());
        await Assert.ThrowsAnyAsync<Exception>(() => account.Prepare(new PrepareRequest(Ledger.NewId("p"), EntrySide.Debit, 100, "USD", Epoch: 1)));
        var reloaded = await account.GetSnapshot();
        Assert.Equal((1_000L, 0L), (reloaded!.AvailableMinor, reloaded.ReservedMinor));

        // Through the coordinator: the first account's prepare fails to be stored, and recovery
        // drives the listed movement to its end, applied once.
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        FaultyRows.FailNextWrite(account.GetGrainId());
        await Assert.ThrowsAnyAsync<Exception>(() => ledger.Coordinator.Execute(request));
        var ended = await ledger.WaitForRecordedEnd(request.TransferId, TimeSpan.FromSeconds(30));

        Assert.Equal(TransferStatus.Committed, ended.Status);
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        var replay = await ledger.Coordinator.Execute(request);
        Assert.Equal((TransferStatus.Committed, true), (replay.Status, replay.Replayed));
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    /// <summary>
    /// A recovery shard whose write of its list fails tells the caller, which drives nothing. The
    /// client's retry of the key then gets one outcome, applied once, however the retry and the
    /// recovery sweep meet.
    /// </summary>
    [Fact]
    public async Task A_transfer_whose_listing_failed_to_be_stored_is_applied_once_when_retried()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("failed-list"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var shard = Cluster.Client.GetRecoveryShard(request.TransferId);
        await shard.List(1); // activated, so the failure hits the listing's write and not a read at activation

        FaultyRows.FailNextWrite(shard.GetGrainId());
        await Assert.ThrowsAnyAsync<Exception>(() => ledger.Coordinator.Execute(request));
        var retried = await ledger.Coordinator.Execute(request);
        var replayed = await ledger.Coordinator.Execute(request);

        Assert.Equal(TransferStatus.Committed, retried.Status);
        Assert.Equal((TransferStatus.Committed, true), (replayed.Status, replayed.Replayed));
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    public sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            FaultyRows.AddTo(siloBuilder);
        }
    }
}
