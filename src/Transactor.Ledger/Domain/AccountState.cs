namespace Transactor.Domain;

/// <summary>The persisted state of one account. Mutated only through <see cref="AccountBook"/>.</summary>
[GenerateSerializer, Alias("Transactor.AccountState")]
public sealed class AccountState
{
    /// <summary>The ISO 4217 currency; null until the account is opened.</summary>
    [Id(0)] public string? Currency { get; set; }

    [Id(1)] public string? Owner { get; set; }

    [Id(2)] public DateTimeOffset OpenedAt { get; set; }

    [Id(3)] public long AvailableMinor { get; set; }

    [Id(4)] public long HeldMinor { get; set; }

    /// <summary>Sum of prepared debits: money that has left available and not yet left the account.</summary>
    [Id(5)] public long ReservedMinor { get; set; }

    /// <summary>Sum of prepared credits: money promised to the account, not yet available.</summary>
    [Id(6)] public long IncomingMinor { get; set; }

    [Id(7)] public bool Locked { get; set; }

    [Id(8)] public long Version { get; set; }

    /// <summary>Movements this account has promised its side of, by transfer id.</summary>
    [Id(9)] public Dictionary<string, PendingEntry> Pending { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Deposits of the batch rules, by transaction id, so they can be disputed; null until the first one.</summary>
    [Id(10)] public DepositHistory? Deposits { get; set; }

    /// <summary>Deposits committed through the service, by transfer id, to their number in <see cref="Deposits"/>.</summary>
    [Id(11)] public Dictionary<string, uint>? DepositNumbers { get; set; }

    /// <summary>The number the last service deposit got in <see cref="Deposits"/>.</summary>
    [Id(12)] public uint LastDepositNumber { get; set; }

    /// <summary>Holds of pending (two-phase) transfers on this account, by the pending transfer's id; null until the first one.</summary>
    [Id(13)] public Dictionary<string, HoldEntry>? Holds { get; set; }

    /// <summary>Sum of the debit holds: money of pending transfers that has left available and may still leave the account.</summary>
    [Id(14)] public long PendingDebitMinor { get; set; }

    /// <summary>Sum of the credit holds: money pending transfers may still bring; not available, and not the account's.</summary>
    [Id(15)] public long PendingCreditMinor { get; set; }

    /// <summary>
    /// The newest entries of the account's history as rows of versions before
    /// <see cref="HistoryTail"/> stored them; a book that records history moves them there when it
    /// loads the row (the next write stores that), so this is null in every row written since.
    /// </summary>
    [Id(16)] public List<HistoryEntry>? EarlierHistoryTail { get; set; }

    /// <summary>Entries recorded so far: the sequence of the newest.</summary>
    [Id(17)] public long HistoryCount { get; set; }

    /// <summary>Full pages moved out of <see cref="HistoryTail"/> into rows of their own.</summary>
    [Id(18)] public int HistoryPages { get; set; }

    /// <summary>Entries per history page for this account, fixed when its history starts.</summary>
    [Id(19)] public int HistoryPageSize { get; set; }

    /// <summary>Where the history begins; null until it has (see <see cref="HistoryStart"/>).</summary>
    [Id(20)] public HistoryStart? HistoryStart { get; set; }

    /// <summary>True when available may go below zero, down to minus <see cref="CreditLimitMinor"/>; false: debits must not exceed credits.</summary>
    [Id(21)] public bool AllowOverdraft { get; set; }

    /// <summary>How far below zero available may go when <see cref="AllowOverdraft"/> is set; 0 otherwise.</summary>
    [Id(22)] public long CreditLimitMinor { get; set; }

    /// <summary>The client's key/values given at opening; null for none (and in rows of earlier versions).</summary>
    [Id(23)] public MetadataMap? Metadata { get; set; }

    /// <summary>
    /// The newest entries of the account's history, oldest first, not yet moved to a page row of
    /// their own (<see cref="HistoryPage"/>); empty until the first. They ride in the account's own
    /// row write, so recording them costs no write of its own. They are kept as the bytes that
    /// row holds (framed entries, <see cref="HistoryCodec"/>), so that write copies them rather than
    /// encoding them again.
    /// A silo of a version before this field skips it and would drop these entries when it rewrites
    /// the row: upgrade by stopping every silo of an earlier version (docs/transfers.md, "Upgrades").
    /// </summary>
    [Id(24)] public ReadOnlyMemory<byte> HistoryTail { get; set; }
}

/// <summary>This account's side of a pending (two-phase) transfer that is neither posted nor voided.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.HoldEntry")]
public sealed record HoldEntry(
    [property: Id(0)] EntrySide Side,
    [property: Id(1)] long AmountMinor);

/// <summary>One side of a movement that an account has promised and not yet applied or released.</summary>
/// <param name="External">True for a deposit or withdrawal (the other side is outside the ledger).</param>
/// <param name="Epoch">The epoch of the lease whose driver prepared it last (0: an earlier version's entry).</param>
/// <param name="Step">What applying it does: an ordinary movement, the hold of a pending transfer, or its post or void.</param>
/// <param name="PendingTransferId">For a post or void: the pending transfer whose hold it ends.</param>
/// <param name="CounterpartyAccountId">The movement's other account, for the history; null for deposits and withdrawals (and entries of earlier versions).</param>
/// <param name="Expiry">For a void: true when the pending transfer expired, for the history.</param>
[GenerateSerializer, Immutable, Alias("Transactor.PendingEntry")]
public sealed record PendingEntry(
    [property: Id(0)] EntrySide Side,
    [property: Id(1)] long AmountMinor,
    [property: Id(2)] bool External = false,
    [property: Id(3)] long Epoch = 0,
    [property: Id(4)] HoldStep Step = HoldStep.None,
    [property: Id(5)] string? PendingTransferId = null,
    [property: Id(6)] string? CounterpartyAccountId = null,
    [property: Id(7)] bool Expiry = false)
{
    /// <summary>True for an entry whose amount sits in reserved or incoming: an ordinary movement or a hold.</summary>
    public bool MovesMoney => Step is HoldStep.None or HoldStep.Hold;
}
