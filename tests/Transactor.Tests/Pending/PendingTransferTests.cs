using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Pending;

/// <summary>Pending (two-phase) transfers on the shared cluster: hold, post, partial post, void, expiry, and their error codes.</summary>
[Collection(ClusterTestGroup.Name)]
public sealed class PendingTransferTests(ClusterFixture fixture)
{
    private static readonly TimeSpan ExpiryWait = TimeSpan.FromSeconds(30);

    private Ledger Ledger => new(fixture.Client);

    [Fact]
    public async Task A_pending_transfer_holds_the_amount_until_a_partial_post_moves_part_and_releases_the_rest()
    {
        var (a, b) = await Ledger.OpenPair(1_000);
        var id = Ledger.NewId("pt");

        var held = await Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 300, "USD"));
        Assert.Equal((TransferStatus.Committed, TransferPhase.Pending), (held.Status, held.Request.Phase));
        Assert.Equal((700L, 300L, 0L), Balances(held.Debit!));
        Assert.Equal((0L, 0L, 300L), Balances(held.Credit!));

        var posted = await Ledger.Coordinator.EndPending(id, TransferPhase.Post, 120);
        Assert.Equal(TransferStatus.Committed, posted.Status);
        Assert.Equal((880L, 0L, 0L), Balances(posted.Debit!));
        Assert.Equal((120L, 0L, 0L), Balances(posted.Credit!));

        var again = await Ledger.Coordinator.EndPending(id, TransferPhase.Post, 120);
        Assert.Equal((TransferStatus.Committed, true), (again.Status, again.Replayed));
        Assert.Equal(RejectionReason.PendingTransferAlreadyPosted, (await Ledger.Coordinator.EndPending(id, TransferPhase.Post, 100)).Reason);
        Assert.Equal(RejectionReason.PendingTransferAlreadyPosted, (await Ledger.Coordinator.EndPending(id, TransferPhase.Void, null)).Reason);
        await Ledger.AssertPendingBalances(a, (880, 0, 0));
        await Ledger.AssertPendingBalances(b, (120, 0, 0));
    }

    [Fact]
    public async Task A_void_releases_the_hold_and_refuses_a_later_post()
    {
        var (a, b) = await Ledger.OpenPair(500);
        var id = Ledger.NewId("pt");
        await Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 500, "USD"));
        var blocked = await Ledger.Coordinator.Execute(new TransferRequest(Ledger.NewId("t"), a, b, 1, "USD"));
        Assert.Equal(RejectionReason.InsufficientFunds, blocked.Reason);

        var voided = await Ledger.Coordinator.EndPending(id, TransferPhase.Void, null);
        Assert.Equal(TransferStatus.Committed, voided.Status);
        Assert.True((await Ledger.Coordinator.EndPending(id, TransferPhase.Void, null)).Replayed);
        Assert.Equal(RejectionReason.PendingTransferAlreadyVoided, (await Ledger.Coordinator.EndPending(id, TransferPhase.Post, null)).Reason);
        await Ledger.AssertPendingBalances(a, (500, 0, 0));
        await Ledger.AssertPendingBalances(b, (0, 0, 0));
    }

    [Fact]
    public async Task Posting_more_than_held_or_an_unknown_transfer_is_refused_and_changes_nothing()
    {
        var (a, b) = await Ledger.OpenPair(400);
        var id = Ledger.NewId("pt");
        await Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 250, "USD"));

        Assert.Equal(RejectionReason.PostExceedsPendingAmount, (await Ledger.Coordinator.EndPending(id, TransferPhase.Post, 251)).Reason);
        Assert.Equal(RejectionReason.PendingTransferNotFound, (await Ledger.Coordinator.EndPending(Ledger.NewId("none"), TransferPhase.Post, null)).Reason);
        var ordinary = Ledger.NewId("t");
        await Ledger.Coordinator.Execute(new TransferRequest(ordinary, a, b, 10, "USD"));
        Assert.Equal(RejectionReason.PendingTransferNotFound, (await Ledger.Coordinator.EndPending(ordinary, TransferPhase.Void, null)).Reason);
        var refused = Ledger.NewId("pt");
        Assert.Equal(RejectionReason.InsufficientFunds, (await Ledger.Coordinator.Execute(TransferRequest.Pending(refused, a, b, 1_000, "USD"))).Reason);
        Assert.Equal(RejectionReason.PendingTransferNotFound, (await Ledger.Coordinator.EndPending(refused, TransferPhase.Post, null)).Reason);

        await Ledger.AssertPendingBalances(a, (140, 250, 0));
        await Ledger.AssertPendingBalances(b, (10, 0, 250));
        Assert.Equal(TransferStatus.Committed, (await Ledger.Coordinator.EndPending(id, TransferPhase.Post, null)).Status);
        await Ledger.AssertPendingBalances(a, (140, 0, 0));
        await Ledger.AssertPendingBalances(b, (260, 0, 0));
    }

    [Fact]
    public async Task A_timeout_voids_the_pending_transfer_through_its_reminder_and_a_later_post_is_told_it_expired()
    {
        var (a, b) = await Ledger.OpenPair(300);
        var id = Ledger.NewId("pt");
        var held = await Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 200, "USD", TimeSpan.FromSeconds(1)));
        Assert.Equal(TransferStatus.Committed, held.Status);

        // Nobody posts or voids it: only the reminder can end it.
        var expired = await Ledger.WaitForPendingEnd(id, ExpiryWait);
        Assert.Equal(TransferPhase.Expire, expired.Request.Phase);
        Assert.True(expired.CreatedAt >= held.CreatedAt + TimeSpan.FromSeconds(1), $"expired at {expired.CreatedAt:O}, placed at {held.CreatedAt:O}");
        await Ledger.AssertPendingBalances(a, (300, 0, 0));
        await Ledger.AssertPendingBalances(b, (0, 0, 0));
        Assert.Equal(RejectionReason.PendingTransferExpired, (await Ledger.Coordinator.EndPending(id, TransferPhase.Post, null)).Reason);
        Assert.Equal(RejectionReason.PendingTransferExpired, (await Ledger.Coordinator.EndPending(id, TransferPhase.Void, null)).Reason);
    }

    [Fact]
    public async Task A_post_before_the_timeout_wins_and_the_reminder_then_changes_nothing()
    {
        var (a, b) = await Ledger.OpenPair(300);
        var id = Ledger.NewId("pt");
        await Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 200, "USD", TimeSpan.FromSeconds(1)));
        var timer = fixture.Client.GetGrain<IPendingTimeoutGrain>(id).GetGrainId();
        var silo = Assert.IsType<InProcessSiloHandle>(fixture.Cluster.Primary);
        var table = silo.SiloHost!.Services.GetRequiredService<IReminderTable>();
        Assert.NotEmpty((await table.ReadRows(timer)).Reminders);
        Assert.Equal(TransferStatus.Committed, (await Ledger.Coordinator.EndPending(id, TransferPhase.Post, null)).Status);

        // The post unregisters the reminder (or, if that failed, the reminder fires after the
        // timeout, finds the transfer posted, changes nothing, and unregisters itself).
        await Ledger.WaitUntil(async () => (await table.ReadRows(timer)).Reminders.Count == 0, ExpiryWait);
        Assert.Null(await fixture.Client.GetTransferResult(PendingTransfers.EndId(id) + "x"));
        Assert.Equal(TransferPhase.Post, (await fixture.Client.GetTransferResult(PendingTransfers.EndId(id)))!.Request.Phase);
        await Ledger.AssertPendingBalances(a, (100, 0, 0));
        await Ledger.AssertPendingBalances(b, (200, 0, 0));
    }

    private static (long, long, long) Balances(AccountSnapshot s) => (s.AvailableMinor, s.PendingDebitMinor, s.PendingCreditMinor);
}
