using Transactor.Domain;

namespace Transactor.Tests.Domain;

/// <summary>The account rules of pending (two-phase) transfers, without a cluster: holds, their ends, late prepares and the checks on loaded state.</summary>
public sealed class AccountBookHoldTests
{
    [Fact]
    public void A_hold_moves_reserved_to_pending_debit_and_a_partial_post_releases_the_rest()
    {
        var book = Funded(1_000);
        Assert.Equal(PrepareStatus.Prepared, book.Prepare(new PrepareRequest("p", EntrySide.Debit, 400, "USD", 1, Step: HoldStep.Hold), out _).Status);
        Assert.Equal(CommitOutcome.Applied, book.Commit("p", 1));
        Assert.Equal((600L, 400L, 0L), (book.State.AvailableMinor, book.State.PendingDebitMinor, book.State.ReservedMinor));
        Assert.Equal(1_000L, book.Snapshot()!.TotalMinor);

        Assert.Equal(PrepareStatus.Prepared, book.Prepare(new PrepareRequest("p/end", EntrySide.Debit, 150, "USD", 1, Step: HoldStep.Post, PendingTransferId: "p"), out _).Status);
        Assert.Equal(CommitOutcome.Applied, book.Commit("p/end", 1));

        Assert.Equal((850L, 0L), (book.State.AvailableMinor, book.State.PendingDebitMinor));
        Assert.Null(book.HoldOf("p"));
    }

    [Fact]
    public void An_end_without_its_hold_or_larger_than_it_is_refused_and_changes_nothing()
    {
        var book = Funded(1_000);
        book.Prepare(new PrepareRequest("p", EntrySide.Debit, 400, "USD", 1, Step: HoldStep.Hold), out _);
        book.Commit("p", 1);
        var version = book.State.Version;

        Assert.Equal(RejectionReason.PendingTransferNotFound, book.Prepare(new PrepareRequest("q/end", EntrySide.Debit, 1, "USD", 1, Step: HoldStep.Void, PendingTransferId: "q"), out _).Reason);
        Assert.Equal(RejectionReason.PendingTransferNotFound, book.Prepare(new PrepareRequest("p/end", EntrySide.Credit, 400, "USD", 1, Step: HoldStep.Void, PendingTransferId: "p"), out _).Reason);
        Assert.Equal(RejectionReason.PostExceedsPendingAmount, book.Prepare(new PrepareRequest("p/end", EntrySide.Debit, 401, "USD", 1, Step: HoldStep.Post, PendingTransferId: "p"), out _).Reason);
        Assert.Equal(version, book.State.Version);
        Assert.Equal((600L, 400L), (book.State.AvailableMinor, book.State.PendingDebitMinor));
    }

    [Fact]
    public void An_aborted_void_leaves_the_hold_and_a_late_prepare_of_an_end_is_released_not_applied()
    {
        var book = Funded(1_000);
        book.Prepare(new PrepareRequest("p", EntrySide.Debit, 400, "USD", 1, Step: HoldStep.Hold), out _);
        book.Commit("p", 1);

        book.Prepare(new PrepareRequest("p/end", EntrySide.Debit, 400, "USD", 1, Step: HoldStep.Void, PendingTransferId: "p"), out _);
        Assert.True(book.Abort("p/end"));
        Assert.Equal((600L, 400L), (book.State.AvailableMinor, book.State.PendingDebitMinor));

        book.Prepare(new PrepareRequest("p/end", EntrySide.Debit, 400, "USD", 1, Step: HoldStep.Void, PendingTransferId: "p"), out _);
        Assert.Equal(CommitOutcome.ReleasedLatePrepare, book.Commit("p/end", 2));
        Assert.Equal((600L, 400L), (book.State.AvailableMinor, book.State.PendingDebitMinor));
    }

    [Fact]
    public void Loaded_state_whose_pending_debit_disagrees_with_its_holds_is_a_broken_invariant()
    {
        var book = Funded(1_000);
        book.Prepare(new PrepareRequest("p", EntrySide.Debit, 400, "USD", 1, Step: HoldStep.Hold), out _);
        book.Commit("p", 1);

        book.State.PendingDebitMinor = 300;

        Assert.Throws<LedgerInvariantException>(book.AssertInvariants);
    }

    private static AccountBook Funded(long amountMinor)
    {
        var book = new AccountBook("a", new AccountState());
        book.Open("USD", null, DateTimeOffset.UnixEpoch);
        book.Prepare(new PrepareRequest("d", EntrySide.Credit, amountMinor, "USD", 1, External: true), out _);
        book.Commit("d", 1);
        return book;
    }
}
