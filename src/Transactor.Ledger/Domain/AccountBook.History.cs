namespace Transactor.Domain;

/// <summary>
/// An account's history: every applied change (a movement's apply on this account, a dispute step)
/// gets the next sequence, its time and the balances right after it. Entries are derived from
/// applies, which happen once per movement and account, in the same state change, so each entry is
/// recorded exactly once and stored by the same write as the change it records. The newest entries
/// stay in the account's row (<see cref="AccountState.HistoryTail"/>); a full page of them is moved
/// to a row of its own (<see cref="HistoryPage"/>) by the account grain, so the row stays bounded.
/// </summary>
public sealed partial class AccountBook
{
    /// <summary>Entries per history page unless the host chooses otherwise.</summary>
    public const int DefaultHistoryPageSize = 8;

    /// <summary>The largest history page: the account's row carries up to a page of entries, and a read up to one page per row.</summary>
    public const int MaxHistoryPageSize = 1_000;

    private TimeProvider? _historyClock;
    private int _historyPageSize = DefaultHistoryPageSize;

    /// <summary>True when this book records history (<see cref="EnableHistory"/>).</summary>
    public bool RecordsHistory => _historyClock is not null;

    /// <summary>
    /// Records history from now on, timed by <paramref name="clock"/>; an account opened before
    /// history existed starts its history now, with its balances now. <paramref name="pageSize"/>
    /// applies to accounts whose history starts here. Without this (the CSV engine), nothing is recorded.
    /// </summary>
    public void EnableHistory(TimeProvider clock, int pageSize = DefaultHistoryPageSize)
    {
        ArgumentNullException.ThrowIfNull(clock);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pageSize, MaxHistoryPageSize);
        _historyClock = clock;
        _historyPageSize = pageSize;
        if (IsOpen && State.HistoryStart is null)
        {
            StartHistory(clock.GetUtcNow(), opened: false);
        }
    }

    /// <summary>The oldest full page of the tail, when one is due to move to its own row; else null.</summary>
    public HistoryPageDue? DueHistoryPage()
    {
        var size = State.HistoryPageSize;
        if (size <= 0 || State.HistoryTail is not { } tail || tail.Count < size)
        {
            return null;
        }

        return new HistoryPageDue(State.HistoryPages, tail.GetRange(0, size));
    }

    /// <summary>
    /// Takes page <paramref name="page"/> out of the tail once its row is stored. Not a change of the
    /// account: its next write stores it, and until then the row still carries the entries, which
    /// read the same either way.
    /// </summary>
    public void HistoryPageStored(int page)
    {
        if (DueHistoryPage() is not { } due || due.Page != page)
        {
            Fail($"history page {page} was stored, but page {State.HistoryPages} is the one due");
            return;
        }

        State.HistoryTail!.RemoveRange(0, State.HistoryPageSize);
        State.HistoryPages++;
        AssertHistory();
    }

    private void StartHistory(DateTimeOffset now, bool opened)
    {
        if (_historyClock is null)
        {
            return;
        }

        State.HistoryPageSize = _historyPageSize;
        State.HistoryStart = opened
            ? new HistoryStart(now, 0, 0, 0, 0)
            : new HistoryStart(now, State.AvailableMinor + State.ReservedMinor, State.HeldMinor, State.PendingDebitMinor, State.PendingCreditMinor);
    }

    /// <summary>Records the apply of <paramref name="entry"/>, which has just changed the balances.</summary>
    private void RecordApplied(string transferId, PendingEntry entry, MetadataMap? metadata)
    {
        var debit = entry.Side == EntrySide.Debit;
        var kind = entry.Step switch
        {
            HoldStep.Hold => debit ? HistoryKind.HoldOut : HistoryKind.HoldIn,
            HoldStep.Post => debit ? HistoryKind.PostOut : HistoryKind.PostIn,
            HoldStep.Void when entry.Expiry => debit ? HistoryKind.ExpireOut : HistoryKind.ExpireIn,
            HoldStep.Void => debit ? HistoryKind.VoidOut : HistoryKind.VoidIn,
            _ when entry.External => debit ? HistoryKind.Withdrawal : HistoryKind.Deposit,
            _ => debit ? HistoryKind.TransferOut : HistoryKind.TransferIn,
        };
        Record(kind, transferId, entry.AmountMinor, entry.CounterpartyAccountId, entry.PendingTransferId, metadata);
    }

    /// <summary>
    /// Appends an entry with the balances as they are now. Available counts what movements still in
    /// flight have reserved: their money leaves only when they are applied, and each apply is an entry.
    /// </summary>
    private void Record(HistoryKind kind, string? transferId, long amountMinor, string? counterparty, string? pendingTransferId, MetadataMap? metadata = null)
    {
        if (_historyClock is null || State.HistoryStart is not { } start)
        {
            return;
        }

        var tail = State.HistoryTail ??= [];
        // Times never go backwards within an account, whatever the clock does, so a search by time is sound.
        var at = _historyClock.GetUtcNow();
        var last = tail.Count > 0 ? tail[^1].At : start.At;
        if (at < last)
        {
            at = last;
        }

        var sequence = ++State.HistoryCount;
        tail.Add(new HistoryEntry(sequence, at, kind, transferId, amountMinor, counterparty,
            State.AvailableMinor + State.ReservedMinor, State.HeldMinor, State.PendingDebitMinor, State.PendingCreditMinor, pendingTransferId, metadata));
    }

    private void AssertHistory()
    {
        var s = State;
        var tailCount = s.HistoryTail?.Count ?? 0;
        if (s.HistoryPageSize == 0)
        {
            if (s.HistoryCount != 0 || tailCount != 0 || s.HistoryPages != 0)
            {
                Fail($"history of {s.HistoryCount} entries without a page size");
            }

            return;
        }

        if (s.HistoryPageSize > MaxHistoryPageSize || s.HistoryPages < 0 || s.HistoryCount != ((long)s.HistoryPages * s.HistoryPageSize) + tailCount)
        {
            Fail($"history of {s.HistoryCount} entries is not {s.HistoryPages} pages of {s.HistoryPageSize} and a tail of {tailCount}");
        }

        if (tailCount > 0 && s.HistoryTail![0].Sequence != ((long)s.HistoryPages * s.HistoryPageSize) + 1)
        {
            Fail($"history tail starts at entry {s.HistoryTail[0].Sequence} after {s.HistoryPages} pages of {s.HistoryPageSize}");
        }
    }
}

/// <summary>A full page of history due to move from the account's row into its own.</summary>
public sealed record HistoryPageDue(int Page, List<HistoryEntry> Entries);
