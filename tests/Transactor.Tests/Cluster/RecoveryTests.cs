using Microsoft.Extensions.DependencyInjection;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>A coordinator stopped dead between two steps: recovery finishes the movement without anybody calling again.</summary>
[Collection(ClusterTestGroup.Name)]
public sealed class RecoveryTests(ClusterFixture fixture)
{
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(30);

    private readonly Ledger _ledger = new(fixture.Client);

    public static TheoryData<TransferStep, bool> Steps()
    {
        var data = new TheoryData<TransferStep, bool>();
        foreach (var step in Enum.GetValues<TransferStep>())
        {
            data.Add(step, true);
            data.Add(step, false);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Steps))]
    public async Task Interrupted_transfer_is_finished_by_recovery(TransferStep step, bool fundsSuffice)
    {
        var prefix = Ledger.NewId($"rec-{step}");
        var ids = await _ledger.OpenFunded(prefix, 2, 1_000);
        // Debit the higher id so the credit side is prepared first when funds suffice.
        var request = new TransferRequest(Ledger.NewId("t"), ids[1], ids[0], fundsSuffice ? 600 : 5_000, "USD");
        ClusterFixture.Faults.Arm(request.TransferId, step);

        var crash = await Assert.ThrowsAsync<InjectedFaultException>(() => _ledger.Coordinator.Execute(request));
        Assert.Contains(request.TransferId, crash.Message, StringComparison.Ordinal);

        var result = await _ledger.WaitForRecordedEnd(request.TransferId, RecoveryTimeout);
        await _ledger.WaitUntilQuiet(ids, RecoveryTimeout);

        var expected = fundsSuffice ? TransferStatus.Committed : TransferStatus.Rejected;
        Assert.Equal(expected, result.Status);
        var balances = (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor).ToArray();
        long[] expectedBalances = fundsSuffice ? [1_600, 400] : [1_000, 1_000];
        Assert.Equal(expectedBalances, balances);
        await _ledger.AssertBalanced(ids, 2_000);

        // A retry after recovery sees the same outcome and moves nothing more.
        var retry = await _ledger.Coordinator.Execute(request);
        Assert.Equal(expected, retry.Status);
        Assert.Equal(balances, (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));

        // Each account's history has the movement once when it committed (after its funding deposit), and not at all otherwise.
        for (var i = 0; i < ids.Length; i++)
        {
            var entries = (await fixture.Client.GetAccountHistory().Entries(ids[i], 0, 100))!.Entries;
            Assert.Equal(fundsSuffice ? 2 : 1, entries.Count);
            Assert.Equal(fundsSuffice ? 1 : 0, entries.Count(e => e.TransferId == request.TransferId));
            Assert.Equal(balances[i], entries[^1].AvailableMinor);
        }
    }

    [Fact]
    public async Task A_decision_from_an_epoch_that_a_later_lease_superseded_is_not_recorded()
    {
        // A coordinator that stalled past its lease must not decide: a successor may already be
        // preparing, and would take an account that applied the late decision for one that never saw it.
        // The movement is listed on a shard key no transfer id hashes to, so that no recovery sweep
        // takes the successor's lease before this test does; this test is both drivers.
        var request = new TransferRequest(Ledger.NewId("t"), "acct-a", "acct-b", 100, "USD");
        var shard = fixture.Client.GetGrain<IRecoveryShardGrain>(UnusedFencingShard);
        var ticket = await shard.Begin(request);
        Assert.True(ticket is { Created: true, Lease: not null, Epoch: 1 }, $"The first Begin of a key records it and hands its caller the lease of epoch 1: {ticket}");
        var successor = await WaitForLease(shard, request.TransferId);
        Assert.Equal(2, successor.Epoch);

        var late = await shard.Decide(request.TransferId, RejectionReason.None, epoch: 1);
        var renewed = await shard.RenewLease(request.TransferId, epoch: 1);
        var timely = await shard.Decide(request.TransferId, RejectionReason.InsufficientFunds, epoch: 2);
        var again = await shard.Decide(request.TransferId, RejectionReason.None, epoch: 2);

        Assert.Equal(TransferStatus.Pending, late!.Status);
        Assert.Null(renewed);
        Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds, 2L), (timely!.Status, timely.Reason, timely.DecidedEpoch));
        Assert.Equal(timely, again);
        // The successor ends it with the recorded decision.
        await shard.Complete(request.TransferId, null, null);
        var result = await shard.WaitForResult(request.TransferId, RecoveryTimeout);
        Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds), (result!.Status, result.Reason));
    }

    /// <summary>A shard key outside <see cref="RecoveryShards.Count"/>, apart from <see cref="ShardRestartTests"/>'s.</summary>
    private const long UnusedFencingShard = 3_000 + RecoveryShards.Count;

    /// <summary>Claims the movement's lease once its holder's has run out (the cluster's lease is 5 s).</summary>
    internal static async Task<DriveTicket> WaitForLease(IRecoveryShardGrain shard, string transferId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        DriveTicket claimed;
        while ((claimed = await shard.Claim(transferId)).Lease is null)
        {
            Assert.True(DateTime.UtcNow < deadline, $"No lease on '{transferId}' within 20 s: {claimed}");
            await Task.Delay(100);
        }

        return claimed;
    }

    [Fact]
    public async Task A_retry_during_the_lease_of_a_crashed_coordinator_waits_then_recovery_finishes()
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId("rec-retry"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 250, "USD");
        ClusterFixture.Faults.Arm(request.TransferId, TransferStep.AfterFirstPrepare);
        await Assert.ThrowsAsync<InjectedFaultException>(() => _ledger.Coordinator.Execute(request));

        // The retry cannot drive while the crashed coordinator's lease lasts; it waits for the outcome.
        var retry = await _ledger.Coordinator.Execute(request);
        var final = retry.Status == TransferStatus.Pending ? await _ledger.WaitForRecordedEnd(request.TransferId, RecoveryTimeout) : retry;

        Assert.Equal(TransferStatus.Committed, final.Status);
        await _ledger.WaitUntilQuiet(ids, RecoveryTimeout);
        Assert.Equal([750L, 1_250L], (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }
}

/// <summary>What the recovery shards keep in storage: ended movements leave it without a write of their own.</summary>
[Collection(ClusterTestGroup.Name)]
public sealed class RecoveryListStorageTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Ended_transfers_leave_the_stored_recovery_lists_within_the_flush_interval()
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("shard-flush"), 2, 10_000);
        var requests = Enumerable.Range(0, 40).Select(_ => new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 10, "USD")).ToArray();
        foreach (var result in await Task.WhenAll(requests.Select(ledger.Execute)))
        {
            Assert.Equal(TransferStatus.Committed, result.Status);
        }

        var transferIds = requests.Select(r => r.TransferId).ToHashSet(StringComparer.Ordinal);
        var serializer = fixture.Client.ServiceProvider.GetRequiredService<Orleans.Serialization.Serializer>();
        string[] StillListed() => ClusterFixture.Store.Rows
            .Where(row => row.Key.StateName == "recovery")
            .SelectMany(row => serializer.Deserialize<RecoveryShardState>(row.Value.Data)!.ReadListings(serializer).Select(listing => listing.TransferId))
            .Where(transferIds.Contains)
            .ToArray();

        // Each was listed in storage before any account changed; the removals ride on later writes or the flush timer.
        var deadline = DateTime.UtcNow + RecoveryShardGrain.RemovalFlushInterval * 4;
        var listed = StillListed();
        while (listed.Length > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            listed = StillListed();
        }

        Assert.Empty(listed);
        await ledger.AssertBalanced(ids, 20_000);
    }
}

/// <summary>Movements that an earlier version left in flight, with the record in the movement's own grain, still end.</summary>
[Collection(ClusterTestGroup.Name)]
public sealed class EarlierVersionRecoveryTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_pending_record_stored_by_an_earlier_version_is_handed_to_its_shard_and_finished_once()
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("legacy"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 300, "USD");
        var record = new TransferRecord(request, TransferStatus.Pending, RejectionReason.None, DateTimeOffset.UtcNow, null);
        // What an earlier version wrote at Begin, before any account changed.
        fixture.StoreRow(TransferState.StateName, LedgerGrains.TransferRowId(request.TransferId), new TransferState { Record = record });

        var seen = await fixture.Client.GetTransferResult(request.TransferId);
        var result = await ledger.WaitForRecordedEnd(request.TransferId, TimeSpan.FromSeconds(30));
        await ledger.WaitUntilQuiet(ids, TimeSpan.FromSeconds(30));

        Assert.Equal(TransferStatus.Pending, seen!.Status);
        Assert.Equal(TransferStatus.Committed, result.Status);
        Assert.Equal([700L, 1_300L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        var retry = await ledger.Coordinator.Execute(request);
        Assert.Equal((TransferStatus.Committed, true), (retry.Status, retry.Replayed));
        await ledger.AssertBalanced(ids, 2_000);
    }
}

/// <summary>
/// A recovery shard that comes back after a crash loads its stored list, which may be behind the
/// movements' rows: it checks each listing against its row before it answers from it.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class ShardRestartTests(ClusterFixture fixture)
{
    /// <summary>A shard key outside <see cref="RecoveryShards.Count"/>: never activated by other tests, so its stored list is this test's.</summary>
    private const long UnusedShard = 1_000 + RecoveryShards.Count;

    [Fact]
    public async Task A_shard_that_comes_back_checks_its_stored_list_against_the_movements_rows()
    {
        var at = DateTimeOffset.UtcNow;
        TransferRecord Pending(string id) => new(new TransferRequest(id, "acct-a", "acct-b", 10, "USD"), TransferStatus.Pending, RejectionReason.None, at, null);
        void StoreRow(string id, TransferState row) => fixture.StoreRow(TransferState.StateName, LedgerGrains.TransferRowId(id), row);

        // Ended, with its removal from the list not yet stored when the shard's silo died.
        var ended = Pending(Ledger.NewId("restart-ended")) with { Status = TransferStatus.Committed, DecidedAt = at };
        var debit = new AccountSnapshot("acct-a", "USD", null, 90, 0, 0, false, 3, at, 0);
        StoreRow(ended.Request.TransferId, new TransferState { Record = ended, Completed = true, Debit = debit });
        // Listed by id by an earlier version, which kept the record in the row: ended, and never recorded.
        var legacyEnded = Pending(Ledger.NewId("restart-legacy")) with { Status = TransferStatus.Rejected, Reason = RejectionReason.InsufficientFunds, DecidedAt = at };
        StoreRow(legacyEnded.Request.TransferId, new TransferState { Record = legacyEnded, Completed = true });
        var neverRecorded = Ledger.NewId("restart-unrecorded");
        // In flight: a coordinator of the shard's previous activation may still drive it.
        var inFlight = Pending(Ledger.NewId("restart-inflight"));

        var shard = fixture.Client.GetGrain<IRecoveryShardGrain>(UnusedShard);
        var list = new RecoveryShardState
        {
            InFlight = { [ended.Request.TransferId] = at, [legacyEnded.Request.TransferId] = at, [neverRecorded] = at, [inFlight.Request.TransferId] = at },
            Records = new() { [ended.Request.TransferId] = ended, [inFlight.Request.TransferId] = inFlight },
        };
        fixture.StoreRow("recovery", shard.GetGrainId(), list);

        var retry = await shard.Begin(ended.Request);
        Assert.True(retry is { Completed: true, Conflict: false, Lease: null }, "a retry of a movement that ended gets its outcome, not a lease");
        Assert.Equal((TransferStatus.Committed, debit), (retry.Result!.Status, retry.Result.Debit));
        Assert.Equal(RejectionReason.InsufficientFunds, (await shard.GetResult(legacyEnded.Request.TransferId))!.Reason);
        Assert.Null(await shard.GetResult(neverRecorded));
        // A movement listed before the shard came back gets a lease at once, under an epoch after any
        // that the previous activation handed out: its drivers are fenced out, whatever their clocks.
        var claimed = await shard.Begin(inFlight.Request);
        Assert.True(claimed is { Completed: false, Conflict: false, Lease: not null, Epoch: 1 }, $"a listed movement gets the next epoch's lease: {claimed}");
        Assert.Equal([inFlight.Request.TransferId], await shard.List(10));
        var decided = await shard.Decide(inFlight.Request.TransferId, RejectionReason.InsufficientFunds, claimed.Epoch);
        Assert.Equal(TransferStatus.Rejected, decided!.Status);
        await shard.Complete(inFlight.Request.TransferId, null, null);
        var result = await shard.WaitForResult(inFlight.Request.TransferId, TimeSpan.FromSeconds(10));
        Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds), (result!.Status, result.Reason));
        Assert.Empty(await shard.List(10));
    }
}
