using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Transactor.Domain;

namespace Transactor.Tests.Batch;

/// <summary>The batch rules on <see cref="AccountBook"/>, without the engine.</summary>
public sealed class AccountBookBatchTests
{
    [Fact]
    public void Deposit_credits_available_and_total()
    {
        var book = Open();

        Assert.Equal(BatchOutcome.Applied, book.Deposit(1, 15_000));

        Assert.Equal((15_000L, 0L), Balances(book));
        Assert.True(book.State.Deposits!.TryGet(1, out var deposit));
        Assert.Equal(new DepositRecord(15_000, 1, DepositStatus.Settled), deposit);
    }

    [Fact]
    public void Withdrawal_debits_available_when_covered_and_is_ignored_otherwise()
    {
        var book = Open();
        book.Deposit(1, 10_000);

        Assert.Equal(BatchOutcome.Applied, book.Withdraw(4_000));
        Assert.Equal(BatchOutcome.InsufficientFunds, book.Withdraw(6_001));
        Assert.Equal((6_000L, 0L), Balances(book));
        Assert.Equal(BatchOutcome.Applied, book.Withdraw(6_000));
        Assert.Equal((0L, 0L), Balances(book));
    }

    [Fact]
    public void Dispute_moves_the_deposit_to_held_and_resolve_moves_it_back()
    {
        var book = Open();
        book.Deposit(1, 10_000);
        book.Deposit(2, 3_000);

        Assert.Equal(BatchOutcome.Applied, book.Dispute(1));
        Assert.Equal((3_000L, 10_000L), Balances(book));
        Assert.Equal(BatchOutcome.Applied, book.Resolve(1));
        Assert.Equal((13_000L, 0L), Balances(book));
        Assert.False(book.State.Locked);
    }

    [Fact]
    public void A_resolved_deposit_can_be_disputed_again()
    {
        var book = Open();
        book.Deposit(1, 10_000);
        book.Dispute(1);
        book.Resolve(1);

        Assert.Equal(BatchOutcome.Applied, book.Dispute(1));
        Assert.Equal((0L, 10_000L), Balances(book));
    }

    [Fact]
    public void Chargeback_removes_the_deposit_from_held_and_total_and_locks()
    {
        var book = Open();
        book.Deposit(1, 10_000);
        book.Deposit(2, 2_500);
        book.Dispute(1);

        Assert.Equal(BatchOutcome.Applied, book.Chargeback(1));

        Assert.Equal((2_500L, 0L), Balances(book));
        Assert.True(book.State.Locked);
        Assert.True(book.State.Deposits!.TryGet(1, out var deposit));
        Assert.Equal(DepositStatus.ChargedBack, deposit.Status);
    }

    [Fact]
    public void Every_rule_is_ignored_on_a_locked_account()
    {
        var book = Locked(out var other);

        Assert.Equal(BatchOutcome.AccountLocked, book.Deposit(9, 100));
        Assert.Equal(BatchOutcome.AccountLocked, book.Withdraw(100));
        Assert.Equal(BatchOutcome.AccountLocked, book.Dispute(other));
        Assert.Equal(BatchOutcome.AccountLocked, book.Resolve(other));
        Assert.Equal(BatchOutcome.AccountLocked, book.Chargeback(other));
        Assert.Equal((2_500L, 0L), Balances(book));
    }

    [Fact]
    public void Disputes_of_unknown_deposits_are_ignored()
    {
        var book = Open();
        book.Deposit(1, 10_000);
        var before = Balances(book);

        Assert.Equal(BatchOutcome.UnknownTx, book.Dispute(2));
        Assert.Equal(BatchOutcome.UnknownTx, book.Resolve(2));
        Assert.Equal(BatchOutcome.UnknownTx, book.Chargeback(2));
        Assert.Equal(BatchOutcome.UnknownTx, Open().Dispute(1));
        Assert.Equal(before, Balances(book));
    }

    [Fact]
    public void Resolve_or_chargeback_of_an_undisputed_deposit_is_ignored()
    {
        var book = Open();
        book.Deposit(1, 10_000);

        Assert.Equal(BatchOutcome.NotDisputed, book.Resolve(1));
        Assert.Equal(BatchOutcome.NotDisputed, book.Chargeback(1));
        Assert.Equal((10_000L, 0L), Balances(book));
        Assert.False(book.State.Locked);
    }

    [Fact]
    public void A_second_dispute_of_a_disputed_deposit_is_ignored()
    {
        var book = Open();
        book.Deposit(1, 10_000);
        book.Deposit(2, 10_000);
        book.Dispute(1);

        Assert.Equal(BatchOutcome.AlreadyDisputed, book.Dispute(1));
        Assert.Equal((10_000L, 10_000L), Balances(book));
    }

    [Fact]
    public void Dispute_larger_than_available_is_ignored_so_available_never_goes_negative()
    {
        var book = Open();
        book.Deposit(1, 10_000);
        book.Withdraw(4_000);

        Assert.Equal(BatchOutcome.ExceedsAvailable, book.Dispute(1));

        Assert.Equal((6_000L, 0L), Balances(book));
        Assert.Equal(DepositStatus.Settled, Status(book, 1));
        book.Deposit(2, 4_000);
        Assert.Equal(BatchOutcome.Applied, book.Dispute(1));
        Assert.Equal((0L, 10_000L), Balances(book));
    }

    [Fact]
    public void Zero_and_negative_amounts_are_ignored()
    {
        var book = Open();
        book.Deposit(1, 10_000);

        Assert.Equal(BatchOutcome.InvalidAmount, book.Deposit(2, 0));
        Assert.Equal(BatchOutcome.InvalidAmount, book.Deposit(3, -5));
        Assert.Equal(BatchOutcome.InvalidAmount, book.Withdraw(0));
        Assert.Equal(BatchOutcome.InvalidAmount, book.Withdraw(-5));
        Assert.Equal((10_000L, 0L), Balances(book));
        Assert.Equal(1, book.State.Deposits!.Count);
    }

    [Fact]
    public void A_deposit_id_the_account_holds_already_is_ignored()
    {
        var book = Open();
        book.Deposit(1, 10_000);

        Assert.Equal(BatchOutcome.DuplicateTx, book.Deposit(1, 99));
        Assert.Equal((10_000L, 0L), Balances(book));
    }

    [Fact]
    public void An_overflowing_deposit_is_ignored_and_never_wraps()
    {
        var book = Open();
        Assert.Equal(BatchOutcome.Applied, book.Deposit(1, long.MaxValue - 10));
        book.Deposit(2, 5);
        book.Dispute(2);

        Assert.Equal(BatchOutcome.BalanceLimitExceeded, book.Deposit(3, 6));
        Assert.Equal(BatchOutcome.Applied, book.Deposit(4, 5));

        Assert.Equal((long.MaxValue - 5, 5L), Balances(book));
        Assert.False(book.State.Deposits!.TryGet(3, out _));
        Assert.Equal(BatchOutcome.UnknownTx, book.Dispute(3));
        book.AssertBatchInvariants();
    }

    [Fact]
    public void Rules_on_an_account_that_is_not_open_change_nothing()
    {
        var book = new AccountBook("closed", new AccountState());

        Assert.Equal(BatchOutcome.AccountNotFound, book.Deposit(1, 100));
        Assert.Equal(BatchOutcome.AccountNotFound, book.Withdraw(100));
        Assert.Equal(BatchOutcome.AccountNotFound, book.Dispute(1));
        Assert.Null(book.State.Deposits);
        book.AssertInvariants();
    }

    [Fact]
    public void Every_change_bumps_the_version_and_ignored_rows_do_not()
    {
        var book = Open();
        var version = book.State.Version;

        book.Deposit(1, 100);
        book.Withdraw(1_000);
        book.Dispute(1);

        Assert.Equal(version + 2, book.State.Version);
    }

    [Fact]
    public void Batch_invariants_catch_held_that_does_not_match_the_disputes()
    {
        var book = Open();
        book.Deposit(1, 100);
        book.Dispute(1);
        book.State.HeldMinor += 1;

        var error = Assert.Throws<LedgerInvariantException>(book.AssertBatchInvariants);
        Assert.Contains("held 101 != sum of disputed deposits 100", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deposit_history_finds_every_id_across_growth()
    {
        var history = new DepositHistory();
        var random = new Random(7);
        var expected = new Dictionary<uint, long>();
        while (expected.Count < 20_000)
        {
            var tx = (uint)random.NextInt64(0, uint.MaxValue + 1L);
            var amount = random.NextInt64(1, 1_000_000);
            Assert.Equal(expected.TryAdd(tx, amount), history.TryAdd(tx, amount));
        }

        Assert.Equal(expected.Count, history.Count);
        foreach (var (tx, amount) in expected)
        {
            Assert.True(history.TryGet(tx, out var record), $"tx {tx} lost");
            Assert.Equal(amount, record.AmountMinor);
        }

        for (var i = 0; i < 10_000; i++)
        {
            var absent = (uint)random.NextInt64(0, uint.MaxValue + 1L);
            Assert.Equal(expected.ContainsKey(absent), history.TryGet(absent, out _));
        }
    }

    [Fact]
    public void Deposit_history_accepts_tx_zero_and_the_largest_tx()
    {
        var history = new DepositHistory();

        Assert.True(history.TryAdd(0, 1));
        Assert.True(history.TryAdd(uint.MaxValue, 2));
        Assert.False(history.TryAdd(0, 3));

        Assert.True(history.TryGet(0, out var zero));
        Assert.Equal(1, zero.AmountMinor);
        Assert.True(history.TryGet(uint.MaxValue, out var max));
        Assert.Equal(2, max.AmountMinor);
    }

    [Fact]
    public void A_remembered_deposit_costs_sixteen_bytes_a_slot() =>
        Assert.Equal(16, Unsafe.SizeOf<DepositRecord>());

    [Fact]
    public void Account_state_with_its_deposit_history_survives_the_orleans_serializer()
    {
        var book = Open();
        for (uint tx = 1; tx <= 100; tx++)
        {
            book.Deposit(tx * 7, tx * 10);
        }

        book.Dispute(14);
        book.Dispute(21);
        book.Chargeback(21);
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

        var copy = new AccountBook("copy", serializer.Deserialize<AccountState>(serializer.SerializeToArray(book.State))!);

        Assert.Equal(Balances(book), Balances(copy));
        Assert.True(copy.State.Locked);
        Assert.Equal(100, copy.State.Deposits!.Count);
        Assert.Equal(DepositStatus.Disputed, Status(copy, 14));
        Assert.Equal(DepositStatus.ChargedBack, Status(copy, 21));
        Assert.Equal(DepositStatus.Settled, Status(copy, 700));
        copy.AssertBatchInvariants();
    }

    [Fact]
    public void Account_state_without_deposits_serializes_without_a_history()
    {
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var state = new AccountState { Currency = "USD", AvailableMinor = 5 };

        var copy = serializer.Deserialize<AccountState>(serializer.SerializeToArray(state))!;

        Assert.Null(copy.Deposits);
        Assert.Equal(5, copy.AvailableMinor);
    }

    [Fact]
    public void A_seeded_random_sequence_keeps_the_invariants_and_conserves_money()
    {
        for (var seed = 1; seed <= 5; seed++)
        {
            var random = new Random(seed);
            var book = Open();
            long deposited = 0;
            long withdrawn = 0;
            long chargedBack = 0;
            for (var step = 0; step < 5_000 && !book.State.Locked; step++)
            {
                var tx = (uint)random.Next(200);
                var amount = random.NextInt64(-10, 10_000);
                var before = book.State.HeldMinor;
                switch (random.Next(5))
                {
                    case 0 when book.Deposit(tx, amount) == BatchOutcome.Applied:
                        deposited += amount;
                        break;
                    case 1 when book.Withdraw(amount) == BatchOutcome.Applied:
                        withdrawn += amount;
                        break;
                    case 2:
                        book.Dispute(tx);
                        break;
                    case 3:
                        book.Resolve(tx);
                        break;
                    case 4 when random.Next(20) == 0 && book.Chargeback(tx) == BatchOutcome.Applied:
                        chargedBack += before - book.State.HeldMinor;
                        break;
                }

                book.AssertBatchInvariants();
                Assert.True(
                    book.State.AvailableMinor + book.State.HeldMinor == deposited - withdrawn - chargedBack,
                    $"seed {seed} step {step}: total {book.State.AvailableMinor + book.State.HeldMinor}, expected {deposited - withdrawn - chargedBack}");
            }
        }
    }

    private static AccountBook Open()
    {
        var book = new AccountBook("batch", new AccountState());
        book.Open("XXX", null, DateTimeOffset.UnixEpoch);
        return book;
    }

    private static AccountBook Locked(out uint otherTx)
    {
        var book = Open();
        book.Deposit(1, 10_000);
        book.Deposit(2, 2_500);
        book.Dispute(2);
        book.Resolve(2);
        book.Dispute(1);
        book.Chargeback(1);
        otherTx = 2;
        return book;
    }

    private static (long Available, long Held) Balances(AccountBook book) => (book.State.AvailableMinor, book.State.HeldMinor);

    private static DepositStatus Status(AccountBook book, uint tx) =>
        book.State.Deposits!.TryGet(tx, out var deposit) ? deposit.Status : DepositStatus.None;
}
