using Transactor.Grains;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Linked;

/// <summary>
/// Linked transfers on the shared three-silo cluster: all legs or none, the failing leg named, an
/// account in several legs netted, idempotency under one key, and a coordinator stopped dead after
/// each step finished by recovery with every leg applied once or none.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class LinkedTransferTests(ClusterFixture fixture)
{
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(30);

    private readonly Ledger _ledger = new(fixture.Client);

    [Fact]
    public async Task All_legs_commit_together_and_an_account_in_several_legs_moves_by_its_net()
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId("lk"), 4, 1_000);
        var metadata = MetadataMap.Of([KeyValuePair.Create("orderId", "o-17")]);
        // ids[1] is both credited and debited: it only passes money on, and could not afford its debit alone.
        var request = TransferRequest.Linked(Ledger.NewId("lt"),
        [
            new TransferLeg(ids[0], ids[1], 1_000, "USD"),
            new TransferLeg(ids[1], ids[2], 1_500, "USD"),
            new TransferLeg(ids[3], ids[2], 200, null),
        ], metadata);

        var result = await _ledger.Execute(request);

        Assert.True(result.Status == TransferStatus.Committed, $"{result.Status} {result.Reason} leg {result.FailedLeg}");
        Assert.Equal([0L, 500L, 2_700L, 800L], (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        Assert.Equal(ids, result.Accounts!.Select(a => a.AccountId));
        Assert.Equal([0L, 500L, 2_700L, 800L], result.Accounts!.Select(a => a.AvailableMinor));
        var read = await fixture.Client.GetTransferResult(request.TransferId);
        Assert.Equal((TransferStatus.Committed, 3, "o-17"), (read!.Status, read.Request.Legs!.Count, read.Request.Metadata!["orderId"]));
        Assert.Equal(result.Accounts!.Select(a => a.AvailableMinor), read.Accounts!.Select(a => a.AvailableMinor));
        await _ledger.AssertBalanced(ids, 4_000);
    }

    [Fact]
    public async Task One_leg_that_cannot_be_afforded_rejects_every_leg_and_is_named()
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId("lk-no"), 4, 100);
        var request = TransferRequest.Linked(Ledger.NewId("lt"),
        [
            new TransferLeg(ids[0], ids[1], 100, "USD"),
            new TransferLeg(ids[2], ids[1], 50, "USD"),
            new TransferLeg(ids[3], ids[0], 150, "USD"),
        ]);

        var result = await _ledger.Execute(request);

        // ids[3] is asked for 150 and holds 100: leg 2 is at fault; ids[0] and ids[1], prepared before it, are released.
        Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds, 2), (result.Status, result.Reason, result.FailedLeg));
        Assert.Equal([100L, 100L, 100L, 100L], (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        var read = await fixture.Client.GetTransferResult(request.TransferId);
        Assert.Equal((TransferStatus.Rejected, 2), (read!.Status, read.FailedLeg));
        await _ledger.AssertBalanced(ids, 400);
    }

    [Fact]
    public async Task Legs_that_cancel_out_on_an_account_still_need_it_open_and_name_the_leg()
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId("lk-zero"), 2, 500);
        var missing = Ledger.NewId("lk-nobody");
        // The unopened account nets to zero: it is checked, not prepared, and its first leg is blamed.
        var request = TransferRequest.Linked(Ledger.NewId("lt"),
        [
            new TransferLeg(ids[0], ids[1], 10, "USD"),
            new TransferLeg(ids[0], missing, 50, "USD"),
            new TransferLeg(missing, ids[1], 50, "USD"),
        ]);

        var result = await _ledger.Execute(request);

        Assert.Equal((TransferStatus.Rejected, RejectionReason.AccountNotFound, 1), (result.Status, result.Reason, result.FailedLeg));
        Assert.Equal([500L, 500L], (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        await _ledger.WaitUntilQuiet(ids, RecoveryTimeout);
    }

    [Fact]
    public async Task Legs_between_accounts_of_different_currencies_are_rejected_at_the_leg()
    {
        var usd = await _ledger.OpenFunded(Ledger.NewId("lk-usd"), 2, 500);
        var eur = await _ledger.OpenFunded(Ledger.NewId("lk-eur"), 1, 500, "EUR");
        var request = TransferRequest.Linked(Ledger.NewId("lt"),
        [
            new TransferLeg(usd[0], usd[1], 10, null),
            new TransferLeg(usd[1], eur[0], 10, null),
        ]);

        var result = await _ledger.Execute(request);

        Assert.Equal((TransferStatus.Rejected, RejectionReason.CurrencyMismatch, 1), (result.Status, result.Reason, result.FailedLeg));
        Assert.Equal([500L, 500L, 500L], (await _ledger.Snapshots([.. usd, .. eur])).Select(s => s.AvailableMinor));
        // Every account had prepared before the currencies were compared: each is released before the answer.
        await _ledger.AssertBalanced([.. usd, .. eur], 1_500);
    }

    [Fact]
    public async Task The_same_linked_transfer_again_gets_the_first_outcome_and_another_under_its_key_is_refused()
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId("lk-idem"), 3, 1_000);
        var id = Ledger.NewId("lt");
        TransferLeg[] legs = [new(ids[0], ids[1], 300, "USD"), new(ids[0], ids[2], 20, "USD")];
        var first = await _ledger.Execute(TransferRequest.Linked(id, legs, MetadataMap.Of([new("a", "1"), new("b", "2")])));

        // Metadata in another order is the same request; one leg changed is another.
        var again = await _ledger.Execute(TransferRequest.Linked(id, legs, MetadataMap.Of([new("b", "2"), new("a", "1")])));
        var other = await _ledger.Execute(TransferRequest.Linked(id, [legs[0], legs[1] with { AmountMinor = 21 }]));
        var fewer = await _ledger.Execute(TransferRequest.Linked(id, [legs[0]]));

        Assert.Equal(TransferStatus.Committed, first.Status);
        Assert.True(again is { Status: TransferStatus.Committed, Replayed: true }, $"{again.Status} replayed {again.Replayed}");
        Assert.Equal(first.Accounts!.Select(a => a.AvailableMinor), again.Accounts!.Select(a => a.AvailableMinor));
        Assert.Equal((TransferStatus.Rejected, RejectionReason.IdempotencyKeyReused), (other.Status, other.Reason));
        Assert.Equal((TransferStatus.Rejected, RejectionReason.IdempotencyKeyReused), (fewer.Status, fewer.Reason));
        Assert.Equal([680L, 1_300L, 1_020L], (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    [Theory]
    [MemberData(nameof(RecoveryTests.Steps), MemberType = typeof(RecoveryTests))]
    public async Task A_linked_transfer_stopped_after_any_step_ends_all_or_nothing(TransferStep step, bool fundsSuffice)
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId($"lk-rec-{step}"), 4, 1_000);
        // Four accounts in ascending order: the last (ids[3]) is debited, and refuses when funds do not suffice,
        // after the three before it have prepared.
        var request = TransferRequest.Linked(Ledger.NewId("lt"),
        [
            new TransferLeg(ids[0], ids[1], 400, "USD"),
            new TransferLeg(ids[3], ids[2], fundsSuffice ? 900 : 1_001, "USD"),
            new TransferLeg(ids[0], ids[2], 100, "USD"),
        ]);
        ClusterFixture.Faults.Arm(request.TransferId, step);

        await Assert.ThrowsAsync<InjectedFaultException>(() => _ledger.Coordinator.Execute(request));
        var result = await _ledger.WaitForRecordedEnd(request.TransferId, RecoveryTimeout);
        await _ledger.WaitUntilQuiet(ids, RecoveryTimeout);

        long[] expected = fundsSuffice ? [500, 1_400, 2_000, 100] : [1_000, 1_000, 1_000, 1_000];
        Assert.Equal(fundsSuffice ? TransferStatus.Committed : TransferStatus.Rejected, result.Status);
        Assert.Equal(fundsSuffice ? null : (int?)1, result.FailedLeg);
        Assert.Equal(expected, (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        await _ledger.AssertBalanced(ids, 4_000);

        var retry = await _ledger.Coordinator.Execute(request);
        Assert.Equal((result.Status, result.FailedLeg), (retry.Status, retry.FailedLeg));
        Assert.Equal(expected, (await _ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }
}
