namespace Transactor.Domain;

/// <summary>
/// What one entry of an account's history records. Values are persisted: never renumber them.
/// "In" and "out" name the account's side: a transfer out debits it, a transfer in credits it.
/// </summary>
[GenerateSerializer]
public enum HistoryKind
{
    /// <summary>Never the kind of an entry.</summary>
    None = 0,

    /// <summary>A deposit from outside the ledger.</summary>
    Deposit = 1,

    /// <summary>A withdrawal to outside the ledger.</summary>
    Withdrawal = 2,

    /// <summary>A transfer from another account.</summary>
    TransferIn = 3,

    /// <summary>A transfer to another account.</summary>
    TransferOut = 4,

    /// <summary>A pending transfer into the account was placed: its amount waits in pending credit.</summary>
    HoldIn = 5,

    /// <summary>A pending transfer out of the account was placed: its amount left available for pending debit.</summary>
    HoldOut = 6,

    /// <summary>A pending transfer into the account was posted: the posted amount became available.</summary>
    PostIn = 7,

    /// <summary>A pending transfer out of the account was posted: the posted amount left, the rest of the hold came back.</summary>
    PostOut = 8,

    /// <summary>A pending transfer into the account was voided.</summary>
    VoidIn = 9,

    /// <summary>A pending transfer out of the account was voided: its hold came back to available.</summary>
    VoidOut = 10,

    /// <summary>A pending transfer into the account expired.</summary>
    ExpireIn = 11,

    /// <summary>A pending transfer out of the account expired: its hold came back to available.</summary>
    ExpireOut = 12,

    /// <summary>A deposit was disputed: its amount moved from available to held.</summary>
    Dispute = 13,

    /// <summary>A dispute was resolved: the amount moved from held back to available.</summary>
    Resolve = 14,

    /// <summary>A disputed deposit was charged back: its amount left held, and the account locked.</summary>
    Chargeback = 15,
}

/// <summary>
/// One change of an account, with its balances right after it. Sequences run 1, 2, 3, ... per
/// account with no gap; times never go backwards within an account. Balances count applied changes
/// only: money that a movement still in flight has reserved counts as available until it is applied.
/// </summary>
/// <param name="TransferId">The movement (for a post, void or expiry: the end's id); for a dispute step, the deposit's id.</param>
/// <param name="AmountMinor">What the change moved: the amount, the hold's amount, the posted amount, or the disputed deposit's amount.</param>
/// <param name="CounterpartyAccountId">The other account of a transfer or pending transfer; null for deposits, withdrawals and disputes.</param>
/// <param name="PendingTransferId">For a post, void or expiry: the pending transfer it ended.</param>
/// <param name="Metadata">
/// The client's key/values on the movement that made the entry (for a post or void: those given to
/// the post or void itself, not the hold's); null for none, for dispute steps, for expiries, and
/// for entries recorded before entries carried metadata. What a history filtered by metadata matches.
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.HistoryEntry")]
public sealed record HistoryEntry(
    [property: Id(0)] long Sequence,
    [property: Id(1)] DateTimeOffset At,
    [property: Id(2)] HistoryKind Kind,
    [property: Id(3)] string? TransferId,
    [property: Id(4)] long AmountMinor,
    [property: Id(5)] string? CounterpartyAccountId,
    [property: Id(6)] long AvailableMinor,
    [property: Id(7)] long HeldMinor,
    [property: Id(8)] long PendingDebitMinor,
    [property: Id(9)] long PendingCreditMinor,
    [property: Id(10)] string? PendingTransferId = null,
    [property: Id(11)] MetadataMap? Metadata = null)
{
    /// <summary>True when the entry's metadata holds every key/value of <paramref name="filter"/> (an entry without metadata matches no filter).</summary>
    public bool Matches(MetadataMap filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return Metadata is { } metadata && metadata.ContainsAll(filter);
    }
}

/// <summary>
/// Where an account's history begins: when the account was opened, with nothing in it, or, for an
/// account opened by a version without history, the moment a version with history first loaded it,
/// with its balances then. Balances before that instant are not known.
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.HistoryStart")]
public sealed record HistoryStart(
    [property: Id(0)] DateTimeOffset At,
    [property: Id(1)] long AvailableMinor,
    [property: Id(2)] long HeldMinor,
    [property: Id(3)] long PendingDebitMinor,
    [property: Id(4)] long PendingCreditMinor);

/// <summary>
/// One full page of an account's history, in a storage row of its own: page <c>k</c> holds entries
/// <c>k × size + 1</c> to <c>(k + 1) × size</c>, where size is the account's <see cref="AccountState.HistoryPageSize"/>.
/// Written once, from entries already stored in the account's row, and never changed.
/// </summary>
[GenerateSerializer, Alias("Transactor.HistoryPage")]
public sealed class HistoryPage
{
    /// <summary>The state name of a history page's row.</summary>
    public const string StateName = "history";

    /// <summary>The page's entries as versions before encoded entries wrote them; empty in rows written since.</summary>
    [Id(0)] public List<HistoryEntry> Entries { get; set; } = [];

    /// <summary>
    /// The page's entries, framed as each was encoded when it was recorded (<see cref="HistoryCodec"/>); null
    /// in rows of earlier versions, which hold <see cref="Entries"/>. A version before this field
    /// reads such a row as an empty page and refuses to serve it (it knows the page's size), rather
    /// than answer a history with a gap.
    /// </summary>
    [Id(1)] public byte[]? Encoded { get; set; }
}
