using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Orleans.Serialization;
using Transactor.Domain;

namespace Transactor.Tests.Domain;

/// <summary>The account rules of history and limits, without a cluster.</summary>
public sealed class AccountBookHistoryTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 5, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Every_apply_is_one_entry_with_the_balances_after_it_and_in_flight_money_counts_as_available()
    {
        var (book, clock) = Opened();
        Apply(book, "d1", EntrySide.Credit, 1_000, external: true);
        clock.Advance(TimeSpan.FromSeconds(1));
        // Two debits in flight; the second is applied first: its entry still counts the first's 300 as available.
        Prepare(book, "t1", EntrySide.Debit, 300, counterparty: "b");
        Prepare(book, "t2", EntrySide.Debit, 200, counterparty: "c");
        Assert.Equal(CommitOutcome.Applied, book.Commit("t2", 1));
        Assert.Equal(CommitOutcome.Applied, book.Commit("t1", 1));

        var entries = book.HistoryTail();
        Assert.Equal(
            [(1L, HistoryKind.Deposit, 1_000L, (string?)null, 1_000L), (2L, HistoryKind.TransferOut, 200L, "c", 800L), (3L, HistoryKind.TransferOut, 300L, "b", 500L)],
            entries.Select(e => (e.Sequence, e.Kind, e.AmountMinor, e.CounterpartyAccountId, e.AvailableMinor)));
        Assert.Equal(Start + TimeSpan.FromSeconds(1), entries[^1].At);
        Assert.Equal(3, book.State.HistoryCount);
    }

    [Fact]
    public void A_commit_applied_twice_or_a_late_prepare_released_records_nothing_more()
    {
        var (book, _) = Opened();
        Apply(book, "d1", EntrySide.Credit, 1_000, external: true);
        Assert.Equal(CommitOutcome.NotHeld, book.Commit("d1", 1));
        Prepare(book, "late", EntrySide.Debit, 100, epoch: 1);
        Assert.Equal(CommitOutcome.ReleasedLatePrepare, book.Commit("late", 2));

        Assert.Single(book.HistoryTail());
        Assert.Equal(1_000L, book.State.AvailableMinor);
    }

    [Fact]
    public void Times_never_go_backwards_when_the_clock_does()
    {
        var (book, clock) = Opened();
        clock.Advance(TimeSpan.FromMinutes(5));
        Apply(book, "d1", EntrySide.Credit, 10, external: true);
        clock.AdjustTime(Start);
        Apply(book, "d2", EntrySide.Credit, 10, external: true);

        Assert.Equal(book.HistoryTail()[0].At, book.HistoryTail()[1].At);
    }

    [Fact]
    public void A_book_loaded_from_a_stored_row_keeps_times_from_going_backwards()
    {
        var (book, clock) = Opened();
        clock.Advance(TimeSpan.FromMinutes(5));
        Apply(book, "d1", EntrySide.Credit, 10, external: true);

        // Another activation loads the row; its clock is behind the newest entry's time.
        var loaded = new AccountBook("a", book.State);
        loaded.EnableHistory(new FakeTimeProvider(Start), TestCodecs.History);
        Apply(loaded, "d2", EntrySide.Credit, 10, external: true);

        Assert.Equal([Start + TimeSpan.FromMinutes(5), Start + TimeSpan.FromMinutes(5)], loaded.HistoryTail().Select(e => e.At));
    }

    /// <summary>
    /// Rows of versions before encoded entries carry the tail as entries (<see cref="AccountState.EarlierHistoryTail"/>)
    /// and pages as entries (<see cref="HistoryPage.Entries"/>): both read as they were written, and
    /// the history goes on after them with no gap.
    /// </summary>
    [Fact]
    public void A_row_and_a_page_of_the_version_before_encoded_entries_read_as_they_were_written()
    {
        var (book, clock) = Opened(pageSize: 2);
        Apply(book, "d1", EntrySide.Credit, 10, external: true);
        Apply(book, "d2", EntrySide.Credit, 20, external: true);
        Apply(book, "d3", EntrySide.Credit, 30, external: true);
        var written = book.HistoryTail();
        var page = new HistoryPage { Entries = written.GetRange(0, 2) };
        // As the earlier version stored the row: page 0 in its row, entry 3 in the row's tail as an entry.
        book.State.HistoryTail = default;
        book.State.EarlierHistoryTail = [written[2]];
        book.State.HistoryPages = 1;

        var loaded = new AccountBook("a", book.State);
        loaded.EnableHistory(clock, TestCodecs.History, pageSize: 2);
        Apply(loaded, "d4", EntrySide.Credit, 40, external: true);

        Assert.Equal(written.GetRange(0, 2), TestCodecs.History.Entries(page));
        Assert.Null(loaded.State.EarlierHistoryTail);
        Assert.Equal([(3L, 60L), (4L, 100L)], loaded.HistoryTail().Select(e => (e.Sequence, e.AvailableMinor)));
        Assert.Equal(written[2], loaded.HistoryTail()[0]);
        loaded.HistoryPageStored(1);
        Assert.Equal((2, 4L, 0), (loaded.State.HistoryPages, loaded.State.HistoryCount, loaded.HistoryTailCount));
    }

    /// <summary>
    /// The tail is appended to and has pages moved out of it in place, in a buffer longer than the
    /// entries: what is stored (and read back by another activation) is exactly the entries not yet in pages.
    /// </summary>
    [Fact]
    public void Pages_moved_out_again_and_again_leave_exactly_the_newer_entries_in_the_stored_row()
    {
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var (book, clock) = Opened(pageSize: 3);
        var pages = new List<HistoryEntry>();
        for (var i = 1; i <= 20; i++)
        {
            Apply(book, $"d{i}", EntrySide.Credit, i, external: true);
            if (book.DueHistoryPage() is { } due)
            {
                pages.AddRange(TestCodecs.History.Decode(due.Entries));
                book.HistoryPageStored(due.Page);
            }
        }

        var stored = serializer.Deserialize<AccountState>(serializer.SerializeToArray(book.State))!;
        var loaded = new AccountBook("a", stored);
        loaded.EnableHistory(clock, TestCodecs.History, pageSize: 3);

        Assert.Equal(Enumerable.Range(1, 18).Select(i => (long)i), pages.Select(e => e.Sequence));
        Assert.Equal([19L, 20L], loaded.HistoryTail().Select(e => e.Sequence));
        Assert.Equal((6, 2), (loaded.State.HistoryPages, loaded.HistoryTailCount));
        Assert.Equal(book.HistoryTail(), loaded.HistoryTail());
        Assert.Equal(210L, loaded.State.AvailableMinor);
    }

    [Fact]
    public void A_full_page_moves_out_of_the_tail_only_when_its_row_is_stored()
    {
        var (book, _) = Opened(pageSize: 2);
        Apply(book, "d1", EntrySide.Credit, 10, external: true);
        Assert.Null(book.DueHistoryPage());
        Apply(book, "d2", EntrySide.Credit, 10, external: true);
        Apply(book, "d3", EntrySide.Credit, 10, external: true);

        var due = book.DueHistoryPage()!;
        Assert.Equal(0, due.Page);
        Assert.Equal([1L, 2L], TestCodecs.History.Decode(due.Entries).Select(e => e.Sequence));
        Assert.Throws<LedgerInvariantException>(() => book.HistoryPageStored(1));
        book.HistoryPageStored(0);

        Assert.Equal((1, 3L), (book.State.HistoryPages, book.State.HistoryCount));
        Assert.Equal([3L], book.HistoryTail().Select(e => e.Sequence));
        Assert.Null(book.DueHistoryPage());
        book.AssertInvariants();
    }

    [Fact]
    public void A_tail_buffer_grown_while_pages_could_not_be_stored_is_given_back_once_they_are()
    {
        var (book, _) = Opened(pageSize: 2);
        // Pages that could not be stored pile up in the tail (the grain refuses prepares at four): its buffer grows.
        for (var i = 1; i <= 200; i++)
        {
            Apply(book, $"d{i}", EntrySide.Credit, 10, external: true);
        }

        var grown = Buffer(book).Length;
        Assert.True(grown >= book.State.HistoryTail.Length, $"{grown} bytes hold {book.State.HistoryTail.Length}");
        while (book.DueHistoryPage() is { } due)
        {
            book.HistoryPageStored(due.Page);
        }

        // Every entry is still counted once, and the buffer is back to the smallest size kept (1-2 KiB).
        Assert.True(grown >= 8 * 1024, $"{grown} bytes");
        Assert.Equal((100, 0), (book.State.HistoryPages, book.HistoryTailCount));
        Assert.True(Buffer(book).Length <= 2048, $"the buffer kept {Buffer(book).Length} of {grown} bytes for an empty tail");
        for (var i = 201; i <= 204; i++)
        {
            Apply(book, $"d{i}", EntrySide.Credit, 10, external: true);
        }

        Assert.Equal([201L, 202L, 203L, 204L], book.HistoryTail().Select(e => e.Sequence));
        Assert.True(Buffer(book).Length <= 2048, $"{Buffer(book).Length} bytes for a few entries");
        book.AssertInvariants();

        static byte[] Buffer(AccountBook book) =>
            System.Runtime.InteropServices.MemoryMarshal.TryGetArray(book.State.HistoryTail, out var segment) ? segment.Array! : throw new InvalidOperationException("the tail is not an array");
    }

    [Fact]
    public void Holds_posts_voids_expiries_and_disputes_each_record_their_kind()
    {
        var (book, _) = Opened();
        Apply(book, "d1", EntrySide.Credit, 1_000, external: true);
        Apply(book, "d2", EntrySide.Credit, 200, external: true);
        Apply(book, "h1", EntrySide.Debit, 400, step: HoldStep.Hold, counterparty: "b");
        Apply(book, "h1/end", EntrySide.Debit, 150, step: HoldStep.Post, pendingId: "h1", counterparty: "b");
        Apply(book, "h2", EntrySide.Debit, 100, step: HoldStep.Hold, counterparty: "b");
        Apply(book, "h2/end", EntrySide.Debit, 100, step: HoldStep.Void, pendingId: "h2", counterparty: "b", expiry: true);
        Apply(book, "h3", EntrySide.Debit, 50, step: HoldStep.Hold, counterparty: "b");
        Apply(book, "h3/end", EntrySide.Debit, 50, step: HoldStep.Void, pendingId: "h3", counterparty: "b");
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("d2"));
        Assert.Equal(BatchOutcome.Applied, book.ResolveDeposit("d2"));
        Assert.Equal(BatchOutcome.Applied, book.DisputeDeposit("d2"));
        Assert.Equal(BatchOutcome.Applied, book.ChargebackDeposit("d2"));

        Assert.Equal(
            [
                (HistoryKind.Deposit, 1_000L, 1_000L, 0L, 0L),
                (HistoryKind.Deposit, 200L, 1_200L, 0L, 0L),
                (HistoryKind.HoldOut, 400L, 800L, 0L, 400L),
                (HistoryKind.PostOut, 150L, 1_050L, 0L, 0L),
                (HistoryKind.HoldOut, 100L, 950L, 0L, 100L),
                (HistoryKind.ExpireOut, 100L, 1_050L, 0L, 0L),
                (HistoryKind.HoldOut, 50L, 1_000L, 0L, 50L),
                (HistoryKind.VoidOut, 50L, 1_050L, 0L, 0L),
                (HistoryKind.Dispute, 200L, 850L, 200L, 0L),
                (HistoryKind.Resolve, 200L, 1_050L, 0L, 0L),
                (HistoryKind.Dispute, 200L, 850L, 200L, 0L),
                (HistoryKind.Chargeback, 200L, 850L, 0L, 0L),
            ],
            book.HistoryTail().Select(e => (e.Kind, e.AmountMinor, e.AvailableMinor, e.HeldMinor, e.PendingDebitMinor)));
        Assert.Equal(("h1/end", "h1", "b"), (book.HistoryTail()[3].TransferId, book.HistoryTail()[3].PendingTransferId, book.HistoryTail()[3].CounterpartyAccountId));
        Assert.Equal("d2", book.HistoryTail()[^1].TransferId);
    }

    [Fact]
    public void Without_a_clock_the_book_records_nothing()
    {
        var book = new AccountBook("a", new AccountState());
        book.Open("USD", null, Start);
        Apply(book, "d1", EntrySide.Credit, 10, external: true);

        Assert.True(book.State.HistoryTail.IsEmpty);
        Assert.Null(book.State.HistoryStart);
        book.AssertInvariants();
    }

    [Fact]
    public void An_account_of_an_earlier_version_starts_its_history_with_its_balances_when_loaded()
    {
        var old = new AccountBook("a", new AccountState());
        old.Open("USD", null, Start);
        Apply(old, "d1", EntrySide.Credit, 700, external: true);

        var clock = new FakeTimeProvider(Start + TimeSpan.FromDays(1));
        var book = new AccountBook("a", old.State);
        book.EnableHistory(clock, TestCodecs.History);

        Assert.Equal(new HistoryStart(Start + TimeSpan.FromDays(1), 700, 0, 0, 0), book.State.HistoryStart);
        Apply(book, "w1", EntrySide.Debit, 200, external: true);
        Assert.Equal((1L, HistoryKind.Withdrawal, 500L), (book.HistoryTail()[0].Sequence, book.HistoryTail()[0].Kind, book.HistoryTail()[0].AvailableMinor));
    }

    [Fact]
    public void An_overdraft_lets_available_go_down_to_minus_the_credit_limit_and_no_further()
    {
        var (book, _) = Opened(limits: new AccountLimits(true, 500));
        Apply(book, "d1", EntrySide.Credit, 100, external: true);

        Assert.Equal(PrepareStatus.Prepared, Prepare(book, "t1", EntrySide.Debit, 600).Status);
        Assert.Equal(RejectionReason.InsufficientFunds, Prepare(book, "t2", EntrySide.Debit, 1).Reason);
        Assert.Equal(CommitOutcome.Applied, book.Commit("t1", 1));

        Assert.Equal((-500L, -500L), (book.State.AvailableMinor, book.Snapshot()!.TotalMinor));
        Assert.Equal(-500L, book.HistoryTail()[^1].AvailableMinor);
        book.AssertInvariants();
    }

    [Fact]
    public void Debits_must_not_exceed_credits_by_default()
    {
        var (book, _) = Opened();
        Apply(book, "d1", EntrySide.Credit, 100, external: true);

        Assert.Equal(RejectionReason.InsufficientFunds, Prepare(book, "t1", EntrySide.Debit, 101).Reason);
        Assert.Equal(PrepareStatus.Prepared, Prepare(book, "t2", EntrySide.Debit, 100).Status);
    }

    [Fact]
    public void A_limit_is_lowered_only_as_far_as_the_balance_allows()
    {
        var (book, _) = Opened(limits: new AccountLimits(true, 500));
        Apply(book, "t1", EntrySide.Debit, 300);
        var version = book.State.Version;

        Assert.Equal(SetLimitsStatus.BalanceBelowLimit, book.SetLimits(new AccountLimits(true, 299)));
        Assert.Equal(SetLimitsStatus.BalanceBelowLimit, book.SetLimits(AccountLimits.Default));
        Assert.Equal(SetLimitsStatus.InvalidLimits, book.SetLimits(new AccountLimits(false, 10)));
        Assert.Equal(SetLimitsStatus.InvalidLimits, book.SetLimits(new AccountLimits(true, -1)));
        Assert.Equal(version, book.State.Version);
        Assert.Equal(SetLimitsStatus.Changed, book.SetLimits(new AccountLimits(true, 300)));
        Assert.Equal((true, 300L, -300L), (book.Snapshot()!.AllowOverdraft, book.Snapshot()!.CreditLimitMinor, book.Snapshot()!.FloorMinor));
    }

    [Fact]
    public void A_loaded_row_below_its_floor_or_with_a_broken_history_is_refused()
    {
        var (book, _) = Opened(limits: new AccountLimits(true, 500));
        book.State.AvailableMinor = -501;
        book.State.ReservedMinor = 0;
        Assert.Throws<LedgerInvariantException>(book.AssertInvariants);

        var (other, _) = Opened();
        Apply(other, "d1", EntrySide.Credit, 10, external: true);
        other.State.HistoryCount = 5;
        Assert.Throws<LedgerInvariantException>(other.AssertInvariants);
    }

    [Fact]
    public void An_apply_keeps_its_movements_metadata_in_its_entry_and_a_filter_matches_every_pair()
    {
        var (book, _) = Opened();
        var order = MetadataMap.Of([new("orderId", "abc"), new("channel", "web")]);
        Assert.Equal(PrepareStatus.Prepared, Prepare(book, "d1", EntrySide.Credit, 100, external: true).Status);
        Assert.Equal(CommitOutcome.Applied, book.Commit("d1", 1, order));
        Apply(book, "d2", EntrySide.Credit, 50, external: true);
        // A second commit of the id, with other metadata, changes nothing: the entry is the first apply's.
        Assert.Equal(CommitOutcome.NotHeld, book.Commit("d1", 1, MetadataMap.Of([new("orderId", "other")])));

        var entries = book.HistoryTail();
        Assert.Equal(new[] { order, null }, entries.Select(e => e.Metadata).ToArray());
        Assert.True(entries[0].Matches(MetadataMap.Of([new("orderId", "abc")])!));
        Assert.True(entries[0].Matches(MetadataMap.Of([new("channel", "web"), new("orderId", "abc")])!));
        Assert.False(entries[0].Matches(MetadataMap.Of([new("orderId", "abc"), new("channel", "app")])!));
        Assert.False(entries[0].Matches(MetadataMap.Of([new("orderId", "ABC")])!));
        Assert.False(entries[0].Matches(MetadataMap.Of([new("orderid", "abc")])!));
        Assert.False(entries[0].Matches(MetadataMap.Of([new("orderId", "abc"), new("channel", "web"), new("extra", "")])!));
        Assert.False(entries[1].Matches(MetadataMap.Of([new("orderId", "abc")])!));
        book.AssertInvariants();
    }

    private static (AccountBook Book, FakeTimeProvider Clock) Opened(int pageSize = AccountBook.DefaultHistoryPageSize, AccountLimits? limits = null)
    {
        var clock = new FakeTimeProvider(Start);
        var book = new AccountBook("a", new AccountState());
        book.EnableHistory(clock, TestCodecs.History, pageSize);
        Assert.Equal(OpenAccountStatus.Opened, book.Open("USD", null, Start, limits ?? AccountLimits.Default).Status);
        return (book, clock);
    }

    private static PrepareResult Prepare(AccountBook book, string id, EntrySide side, long amountMinor, long epoch = 1, bool external = false, HoldStep step = HoldStep.None, string? pendingId = null, string? counterparty = null, bool expiry = false) =>
        book.Prepare(new PrepareRequest(id, side, amountMinor, "USD", epoch, external, step, pendingId, counterparty, expiry), out _);

    private static void Apply(AccountBook book, string id, EntrySide side, long amountMinor, bool external = false, HoldStep step = HoldStep.None, string? pendingId = null, string? counterparty = null, bool expiry = false)
    {
        Assert.Equal(PrepareStatus.Prepared, Prepare(book, id, side, amountMinor, 1, external, step, pendingId, counterparty, expiry).Status);
        Assert.Equal(CommitOutcome.Applied, book.Commit(id, 1));
    }
}
