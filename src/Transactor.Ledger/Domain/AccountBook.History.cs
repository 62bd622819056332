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
    private HistoryCodec? _historyCodec;
    private int _historyPageSize = DefaultHistoryPageSize;

    /// <summary>The time of the newest entry, once known: times never go backwards within an account.</summary>
    private DateTimeOffset? _lastHistoryAt;

    /// <summary>
    /// The buffer <see cref="AccountState.HistoryTail"/> is the start of, once this book has changed
    /// the tail: entries are appended in place and a stored page's bytes are moved out in place, so
    /// the buffer, once grown to a page or so, lives as long as the account's activation. One grown
    /// far beyond that (pages that could not be stored piled up) is replaced when they move out.
    /// </summary>
    private byte[]? _tail;

    /// <summary>True when this book records history (<see cref="EnableHistory"/>).</summary>
    public bool RecordsHistory => _historyClock is not null;

    /// <summary>
    /// Records history from now on, timed by <paramref name="clock"/>, each entry encoded once by
    /// <paramref name="codec"/>; an account opened before history existed starts its history now,
    /// with its balances now. <paramref name="pageSize"/> applies to accounts whose history starts
    /// here. Without this (the CSV engine), nothing is recorded.
    /// </summary>
    public void EnableHistory(TimeProvider clock, HistoryCodec codec, int pageSize = DefaultHistoryPageSize)
    {
        ArgumentNullException.ThrowIfNull(clock);
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pageSize, MaxHistoryPageSize);
        _historyClock = clock;
        _historyCodec = codec;
        _historyPageSize = pageSize;
        if (State.EarlierHistoryTail is { } earlier)
        {
            // A row of a version before encoded entries: the same entries, encoded. Not a change of
            // the account: its next write stores them so, and until then the row reads the same.
            var newer = State.HistoryTail;
            var buffer = Array.Empty<byte>();
            var length = 0;
            foreach (var entry in earlier)
            {
                codec.Append(entry, ref buffer, ref length);
            }

            SetTail(buffer, length, newer.Span);
            State.EarlierHistoryTail = null;
        }

        if (IsOpen && State.HistoryStart is null)
        {
            StartHistory(clock.GetUtcNow(), opened: false);
        }

        AssertHistory(checkTailStart: true);
    }

    /// <summary>
    /// The entries the account's row carries (those not yet moved to page rows), oldest first,
    /// decoded by <paramref name="codec"/> (by default, the one history is recorded with: a book
    /// that records none still reads what an earlier activation recorded).
    /// </summary>
    public List<HistoryEntry> HistoryTail(HistoryCodec? codec = null)
    {
        var tail = State.EarlierHistoryTail is { } earlier ? [.. earlier] : new List<HistoryEntry>();
        if (!State.HistoryTail.IsEmpty)
        {
            codec ??= _historyCodec ?? throw new InvalidOperationException("The book holds encoded history entries: give the codec to read them with.");
            tail.AddRange(codec.Decode(State.HistoryTail.Span));
        }

        return tail;
    }

    /// <summary>Entries the account's row carries: those not yet moved to page rows.</summary>
    public int HistoryTailCount => Frames.Count(State.HistoryTail.Span) + (State.EarlierHistoryTail?.Count ?? 0);

    /// <summary>The oldest full page of the tail, when one is due to move to its own row; else null.</summary>
    public HistoryPageDue? DueHistoryPage()
    {
        if (!HistoryPageIsDue)
        {
            return null;
        }

        var tail = State.HistoryTail.Span;
        return new HistoryPageDue(State.HistoryPages, tail[..Frames.LengthOf(tail, State.HistoryPageSize)].ToArray(), State.HistoryPageSize);
    }

    /// <summary>
    /// True when the tail holds a full page (<see cref="DueHistoryPage"/>). A row of an earlier
    /// version that this book does not record in (its tail is <see cref="AccountState.EarlierHistoryTail"/>) has none due.
    /// </summary>
    public bool HistoryPageIsDue
    {
        get
        {
            var size = State.HistoryPageSize;
            return size > 0 && State.EarlierHistoryTail is null && State.HistoryCount - ((long)State.HistoryPages * size) >= size;
        }
    }

    /// <summary>
    /// Takes page <paramref name="page"/> out of the tail once its row is stored. Not a change of the
    /// account: its next write stores it, and until then the row still carries the entries, which
    /// read the same either way.
    /// </summary>
    public void HistoryPageStored(int page)
    {
        if (!HistoryPageIsDue || State.HistoryPages != page)
        {
            Fail($"history page {page} was stored, but page {State.HistoryPages} is the one due");
            return;
        }

        var tail = State.HistoryTail.Span;
        var rest = tail[Frames.LengthOf(tail, State.HistoryPageSize)..];
        // Room for what stays and a page to come; a buffer grown far beyond that (pages that could
        // not be stored for a while piled up in it) is given back rather than kept for the activation's life.
        var room = Math.Max(1024, 2 * tail.Length);
        if (_tail is not null && State.HistoryTail.Span == _tail.AsSpan(0, tail.Length) && _tail.Length <= 2 * room)
        {
            // The buffer is this book's: move the rest to its start.
            rest.CopyTo(_tail);
            State.HistoryTail = _tail.AsMemory(0, rest.Length);
        }
        else
        {
            SetTail(new byte[room], 0, rest);
        }

        State.HistoryPages++;
        AssertHistory(checkTailStart: true);
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

        // Times never go backwards within an account, whatever the clock does, so a search by time is sound.
        var at = _historyClock.GetUtcNow();
        var last = _lastHistoryAt ??= State.HistoryTail.IsEmpty ? start.At : _historyCodec!.Decode(State.HistoryTail.Span)[^1].At;
        if (at < last)
        {
            at = last;
        }

        _lastHistoryAt = at;
        var sequence = ++State.HistoryCount;
        var entry = new HistoryEntry(sequence, at, kind, transferId, amountMinor, counterparty,
            State.AvailableMinor + State.ReservedMinor, State.HeldMinor, State.PendingDebitMinor, State.PendingCreditMinor, pendingTransferId, metadata);
        var length = State.HistoryTail.Length;
        if (_tail is null || State.HistoryTail.Span != _tail.AsSpan(0, length))
        {
            // The first entry this book records: the tail read from storage moves into a buffer of the book's own.
            SetTail(new byte[Math.Max(1024, length * 2)], 0, State.HistoryTail.Span);
        }

        var buffer = _tail!;
        _historyCodec!.Append(entry, ref buffer, ref length);
        _tail = buffer;
        State.HistoryTail = buffer.AsMemory(0, length);
    }

    /// <summary>Makes <paramref name="buffer"/>, holding <paramref name="length"/> bytes of entries followed by <paramref name="more"/>, the tail.</summary>
    private void SetTail(byte[] buffer, int length, ReadOnlySpan<byte> more)
    {
        if (buffer.Length < length + more.Length)
        {
            Array.Resize(ref buffer, length + more.Length);
        }

        more.CopyTo(buffer.AsSpan(length));
        _tail = buffer;
        State.HistoryTail = buffer.AsMemory(0, length + more.Length);
    }

    /// <summary>
    /// Checks that the history's counts add up. With <paramref name="checkTailStart"/> (when a row
    /// is loaded and when a page moves out), also that the tail starts right after the pages: that
    /// decodes the tail's first entry, so the checks after every change leave it out.
    /// </summary>
    private void AssertHistory(bool checkTailStart = false)
    {
        var s = State;
        var tailCount = HistoryTailCount;
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

        if (checkTailStart && tailCount > 0 && _historyCodec is { } codec && s.EarlierHistoryTail is null
            && codec.DecodeFirst(s.HistoryTail.Span).Sequence is var first && first != ((long)s.HistoryPages * s.HistoryPageSize) + 1)
        {
            Fail($"history tail starts at entry {first} after {s.HistoryPages} pages of {s.HistoryPageSize}");
        }
    }
}

/// <summary>A full page of history due to move from the account's row into its own: its <paramref name="Count"/> entries, framed as the row holds them.</summary>
public sealed record HistoryPageDue(int Page, byte[] Entries, int Count);
