using FsCheck;
using FsCheck.Fluent;
using Transactor.Domain;

namespace Transactor.Tests.Domain;

/// <summary>
/// An account remembers its most recent <see cref="AccountBook.DisputableDeposits"/> deposits made
/// through the service, so they can be disputed, and no more: its row is rewritten on every change.
/// </summary>
public sealed class DepositWindowTests
{
    private const int Window = AccountBook.DisputableDeposits;
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Only_the_most_recent_deposits_can_be_disputed()
    {
        var book = Opened();
        for (var i = 1; i <= Window + 5; i++)
        {
            Deposit(book, $"d-{i}", 10);
        }

        Assert.Equal((Window, Window), (book.State.DepositNumbers!.Count, book.State.Deposits!.Count));
        for (var i = 1; i <= 5; i++)
        {
            Assert.Equal(BatchOutcome.UnknownTx, book.DisputeDeposit($"d-{i}"));
        }

        var version = book.State.Version;
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("d-6"));
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit($"d-{Window + 5}"));
        Assert.Equal(version + 2, book.State.Version);
        Assert.Equal((10L * (Window + 5) - 20, 20L), (book.State.AvailableMinor, book.State.HeldMinor));
        book.AssertBatchInvariants();
    }

    [Fact]
    public void A_deposit_under_dispute_is_kept_until_its_dispute_ends()
    {
        var book = Opened();
        Deposit(book, "old", 500);
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("old"));
        for (var i = 1; i <= Window; i++)
        {
            Deposit(book, $"d-{i}", 1);
        }

        // The disputed deposit stayed; the oldest settled one made room.
        Assert.Equal(Window, book.State.DepositNumbers!.Count);
        Assert.Equal(BatchOutcome.UnknownTx, book.DisputeDeposit("d-1"));
        Assert.Equal(BatchOutcome.Applied, book.ResolveDeposit("old"));
        Assert.Equal((500L + Window, 0L), (book.State.AvailableMinor, book.State.HeldMinor));
        book.AssertBatchInvariants();

        // Once settled, it is the oldest, and the next deposit forgets it.
        Deposit(book, "next", 1);
        Assert.Equal(BatchOutcome.UnknownTx, book.DisputeDeposit("old"));
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("d-2"));
    }

    [Fact]
    public void With_every_remembered_deposit_under_dispute_a_new_deposit_is_credited_and_not_remembered()
    {
        var book = Opened();
        for (var i = 1; i <= Window; i++)
        {
            Deposit(book, $"d-{i}", 1);
            Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit($"d-{i}"));
        }

        Deposit(book, "unremembered", 7);

        Assert.Equal((7L, (long)Window), (book.State.AvailableMinor, book.State.HeldMinor));
        Assert.Equal(BatchOutcome.UnknownTx, book.DisputeDeposit("unremembered"));
        Assert.Equal(Window, book.State.DepositNumbers!.Count);
        book.AssertBatchInvariants();

        // A dispute that ends frees room for the next deposit.
        Assert.Equal(BatchOutcome.Applied, book.ResolveDeposit("d-1"));
        Deposit(book, "remembered", 3);
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("remembered"));
        Assert.Equal(BatchOutcome.UnknownTx, book.ResolveDeposit("d-1"));
        Assert.Equal(BatchOutcome.Applied, book.ResolveDeposit("d-2"));
        book.AssertBatchInvariants();
    }

    [Fact]
    public void A_row_that_remembers_more_than_the_window_is_trimmed_on_its_next_deposit()
    {
        // Earlier versions remembered every deposit.
        var book = Opened();
        var state = book.State;
        state.Deposits = new DepositHistory();
        state.DepositNumbers = new Dictionary<string, uint>(StringComparer.Ordinal);
        for (var n = 1u; n <= 2 * Window; n++)
        {
            state.Deposits.TryAdd(n, 2);
            state.DepositNumbers[$"d-{n}"] = n;
        }

        state.LastDepositNumber = 2 * Window;
        state.AvailableMinor = 4L * Window;
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("d-1"));

        Deposit(book, "new", 1);

        Assert.Equal(Window, state.DepositNumbers.Count);
        Assert.Equal(Window, state.Deposits.Count);
        Assert.Equal(BatchOutcome.Applied, book.ResolveDeposit("d-1"));
        Assert.Equal(BatchOutcome.UnknownTx, book.DisputeDeposit("d-2"));
        Assert.Equal(BatchOutcome.UnknownTx, book.DisputeDeposit($"d-{Window + 2}"));
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit($"d-{Window + 3}"));
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("new"));
        book.AssertBatchInvariants();
    }

    [Fact]
    public void The_deposit_table_agrees_with_a_dictionary_under_adds_and_removes()
    {
        // Ids from a small range collide in the table's probe runs, where removal has to shift entries back.
        var operation = Gen.Choose(0, 2).SelectMany(kind => Gen.Choose(0, 40).Select(tx => (Add: kind > 0, Tx: (uint)tx)));
        var replay = new Replay(new Rnd(20261124, 0x9E3779B97F4A7C15), Microsoft.FSharp.Core.FSharpOption<int>.None);
        var config = Config.QuickThrowOnFailure.WithMaxTest(300).WithEndSize(200).WithReplay(replay);
        Check.One(config, Prop.ForAll(Arb.From(Gen.ListOf(operation).Select(l => l.ToArray())), operations =>
        {
            var table = new DepositHistory();
            var model = new Dictionary<uint, long>();
            foreach (var (add, tx) in operations)
            {
                var amount = tx + 1L;
                Assert.Equal(add ? model.TryAdd(tx, amount) : model.Remove(tx), add ? table.TryAdd(tx, amount) : table.Remove(tx));
            }

            Assert.Equal(model.Count, table.Count);
            for (var tx = 0u; tx <= 40; tx++)
            {
                Assert.Equal(model.TryGetValue(tx, out var expected), table.TryGet(tx, out var found));
                Assert.Equal(expected, found.AmountMinor);
            }
        }));
    }

    private static AccountBook Opened()
    {
        var book = new AccountBook("acct", new AccountState());
        book.Open("USD", null, Now);
        return book;
    }

    /// <summary>A deposit as the service makes one: an external credit, prepared and committed.</summary>
    private static void Deposit(AccountBook book, string id, long amount)
    {
        var prepared = book.Prepare(new PrepareRequest(id, EntrySide.Credit, amount, "USD", Epoch: 1, External: true), out _);
        Assert.Equal(PrepareStatus.Prepared, prepared.Status);
        Assert.Equal(CommitOutcome.Applied, book.Commit(id, 1));
    }
}
