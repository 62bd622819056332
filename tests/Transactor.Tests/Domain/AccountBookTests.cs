using Transactor.Domain;

namespace Transactor.Tests.Domain;

public sealed class AccountBookTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Prepared_debit_reserves_then_commit_removes_it()
    {
        var book = Funded(1_000);

        var prepared = book.Prepare(Debit("t1", 300), out var changed);

        Assert.Equal(PrepareStatus.Prepared, prepared.Status);
        Assert.True(changed);
        Assert.Equal((700L, 300L), (book.State.AvailableMinor, book.State.ReservedMinor));
        Assert.Equal(CommitOutcome.Applied, book.Commit("t1", 1));
        Assert.Equal((700L, 0L), (book.State.AvailableMinor, book.State.ReservedMinor));
        Assert.Equal(CommitOutcome.NotHeld, book.Commit("t1", 1));
        Assert.Equal(700L, book.State.AvailableMinor);
    }

    [Fact]
    public void Aborted_debit_gives_the_money_back()
    {
        var book = Funded(1_000);
        book.Prepare(Debit("t1", 300), out _);

        Assert.True(book.Abort("t1"));
        Assert.False(book.Abort("t1"));
        Assert.Equal((1_000L, 0L), (book.State.AvailableMinor, book.State.ReservedMinor));
    }

    [Fact]
    public void Prepared_credit_is_not_available_until_commit()
    {
        var book = Funded(0);
        book.Prepare(Credit("t1", 500), out _);

        Assert.Equal((0L, 500L), (book.State.AvailableMinor, book.State.IncomingMinor));
        book.Commit("t1", 1);
        Assert.Equal((500L, 0L), (book.State.AvailableMinor, book.State.IncomingMinor));
    }

    [Fact]
    public void Prepare_is_idempotent_by_transfer_id()
    {
        var book = Funded(1_000);
        book.Prepare(Debit("t1", 300), out _);

        var again = book.Prepare(Debit("t1", 300), out var changed);

        Assert.Equal(PrepareStatus.Prepared, again.Status);
        Assert.False(changed);
        Assert.Equal(700L, book.State.AvailableMinor);
    }

    [Fact]
    public void Debit_above_available_is_insufficient_funds()
    {
        var book = Funded(100);

        var result = book.Prepare(Debit("t1", 101), out var changed);

        Assert.Equal((PrepareStatus.Rejected, RejectionReason.InsufficientFunds), (result.Status, result.Reason));
        Assert.False(changed);
        Assert.Equal(100L, book.State.AvailableMinor);
    }

    [Fact]
    public void Prepare_from_an_earlier_epoch_than_the_entry_is_superseded_and_changes_nothing()
    {
        var book = Funded(1_000);
        book.Prepare(Debit("t1", 300) with { Epoch = 3 }, out _);

        var late = book.Prepare(Debit("t1", 300) with { Epoch = 2 }, out var changed);

        Assert.Equal(PrepareStatus.Superseded, late.Status);
        Assert.False(changed);
        Assert.Equal((700L, 300L, 3L), (book.State.AvailableMinor, book.State.ReservedMinor, book.State.Pending["t1"].Epoch));
    }

    [Fact]
    public void Prepare_from_a_later_epoch_takes_the_entry_over_without_reserving_again()
    {
        var book = Funded(1_000);
        book.Prepare(Debit("t1", 300) with { Epoch = 1 }, out _);

        var successor = book.Prepare(Debit("t1", 300) with { Epoch = 2 }, out var changed);

        Assert.Equal(PrepareStatus.Prepared, successor.Status);
        Assert.True(changed, "the entry's new epoch must be stored");
        Assert.Equal((700L, 300L, 2L), (book.State.AvailableMinor, book.State.ReservedMinor, book.State.Pending["t1"].Epoch));
    }

    [Fact]
    public void Commit_releases_an_entry_prepared_under_an_epoch_before_the_decision()
    {
        // The movement was decided under epoch 2 and applied here; a driver of epoch 1 then prepared
        // it again. Applying that entry would debit the account twice.
        var book = Funded(1_000);
        book.Prepare(Debit("t1", 300) with { Epoch = 2 }, out _);
        Assert.Equal(CommitOutcome.Applied, book.Commit("t1", 2));
        book.Prepare(Debit("t1", 300) with { Epoch = 1 }, out _);

        Assert.Equal(CommitOutcome.ReleasedLatePrepare, book.Commit("t1", 2));

        Assert.Equal((700L, 0L), (book.State.AvailableMinor, book.State.ReservedMinor));
        Assert.Empty(book.State.Pending);
    }

    [Fact]
    public void Commit_of_a_late_credit_releases_it_and_credits_nothing()
    {
        var book = Funded(0);
        book.Prepare(Credit("t1", 300) with { Epoch = 3 }, out _);
        Assert.Equal(CommitOutcome.Applied, book.Commit("t1", 3));
        book.Prepare(Credit("t1", 300) with { Epoch = 2 }, out _);

        Assert.Equal(CommitOutcome.ReleasedLatePrepare, book.Commit("t1", 3));
        Assert.Equal(CommitOutcome.NotHeld, book.Commit("t1", 3));

        Assert.Equal((300L, 0L), (book.State.AvailableMinor, book.State.IncomingMinor));
    }

    [Fact]
    public void Commit_of_an_entry_prepared_after_its_deciding_epoch_is_an_invariant_failure()
    {
        var book = Funded(1_000);
        book.Prepare(Debit("t1", 300) with { Epoch = 5 }, out _);

        Assert.Throws<LedgerInvariantException>(() => book.Commit("t1", 4));
    }

    [Fact]
    public void Locked_account_refuses_debits_and_credits()
    {
        var book = Funded(1_000);
        book.State.Locked = true;

        Assert.Equal(RejectionReason.AccountLocked, book.Prepare(Debit("t1", 1), out _).Reason);
        Assert.Equal(RejectionReason.AccountLocked, book.Prepare(Credit("t2", 1), out _).Reason);
    }

    [Fact]
    public void Unopened_account_is_not_found()
    {
        var book = new AccountBook("nobody", new AccountState());

        Assert.Equal(RejectionReason.AccountNotFound, book.Prepare(Credit("t1", 1), out _).Reason);
        Assert.Null(book.Snapshot());
    }

    [Fact]
    public void Currency_must_match()
    {
        var book = Funded(1_000);

        Assert.Equal(RejectionReason.CurrencyMismatch, book.Prepare(Debit("t1", 1) with { Currency = "EUR" }, out _).Reason);
    }

    [Fact]
    public void Credit_that_would_overflow_64_bits_is_rejected_not_wrapped()
    {
        var book = Funded(long.MaxValue - 10);

        var result = book.Prepare(Credit("t1", 11), out var changed);

        Assert.Equal(RejectionReason.BalanceLimitExceeded, result.Reason);
        Assert.False(changed);
        Assert.Equal(PrepareStatus.Prepared, book.Prepare(Credit("t2", 10), out _).Status);
        Assert.Equal(RejectionReason.BalanceLimitExceeded, book.Prepare(Credit("t3", 1), out _).Reason);
    }

    [Fact]
    public void Opening_twice_is_idempotent_and_a_different_currency_conflicts()
    {
        var book = new AccountBook("a", new AccountState());

        Assert.Equal(OpenAccountStatus.Opened, book.Open("USD", "ann", Now).Status);
        Assert.Equal(OpenAccountStatus.AlreadyOpen, book.Open("USD", "ann", Now).Status);
        Assert.Equal(OpenAccountStatus.Conflict, book.Open("EUR", "ann", Now).Status);
        Assert.Equal(OpenAccountStatus.InvalidCurrency, new AccountBook("b", new AccountState()).Open("usd", null, Now).Status);
    }

    [Fact]
    public void Loaded_state_that_breaks_an_invariant_is_refused()
    {
        var state = new AccountState { Currency = "USD", AvailableMinor = 10, ReservedMinor = 5 };

        var error = Assert.Throws<LedgerInvariantException>(() => new AccountBook("a", state).AssertInvariants());
        Assert.Contains("reserved 5", error.Message, StringComparison.Ordinal);
    }

    private static AccountBook Funded(long availableMinor)
    {
        var book = new AccountBook("acct", new AccountState());
        book.Open("USD", null, Now);
        book.State.AvailableMinor = availableMinor;
        return book;
    }

    private static PrepareRequest Debit(string id, long amount) => new(id, EntrySide.Debit, amount, "USD", Epoch: 1);

    private static PrepareRequest Credit(string id, long amount) => new(id, EntrySide.Credit, amount, "USD", Epoch: 1);
}
