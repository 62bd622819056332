using Transactor.Domain;

namespace Transactor;

/// <summary>The part of an account's history its grain holds, and where the rest is (<c>IAccountGrain.GetHistoryHead</c>).</summary>
/// <param name="Count">Entries recorded so far; the newest has this sequence.</param>
/// <param name="Pages">Full pages in rows of their own: entries 1 to <c>Pages × PageSize</c>.</param>
/// <param name="PageSize">Entries per page of this account.</param>
/// <param name="Tail">Entries <c>Pages × PageSize + 1</c> to <paramref name="Count"/>, oldest first.</param>
/// <param name="Start">Where the history begins; null when the account records none.</param>
[GenerateSerializer, Immutable, Alias("Transactor.HistoryHead")]
public sealed record HistoryHead(
    [property: Id(0)] AccountSnapshot Account,
    [property: Id(1)] long Count,
    [property: Id(2)] int Pages,
    [property: Id(3)] int PageSize,
    [property: Id(4)] IReadOnlyList<HistoryEntry> Tail,
    [property: Id(5)] HistoryStart? Start);

/// <summary>A run of an account's history entries, oldest first.</summary>
/// <param name="Count">The account's entries at the time of the read: more may follow <paramref name="Entries"/> when the last of them has a smaller sequence.</param>
/// <param name="ScannedThrough">
/// The last sequence the read looked at: a read continues after it. For a read without a filter,
/// the last entry's sequence (or where the read started, when it found none); for a read filtered by
/// metadata, it may lie beyond the last entry returned, as entries that did not match were looked at
/// too. More may follow when it is below <paramref name="Count"/>.
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.HistoryEntries")]
public sealed record HistoryEntries(
    [property: Id(0)] IReadOnlyList<HistoryEntry> Entries,
    [property: Id(1)] long Count,
    [property: Id(2)] long ScannedThrough = 0);

/// <summary>Whether an account's balances at an instant are known.</summary>
[GenerateSerializer]
public enum BalanceAtStatus
{
    /// <summary>Known: the balances after entry <c>Sequence</c> (0: before the first entry).</summary>
    Known = 0,

    /// <summary>The instant is before the account was opened.</summary>
    BeforeOpening = 1,

    /// <summary>The instant is before the account's history starts (it was opened by a version without history).</summary>
    BeforeHistory = 2,
}

/// <summary>An account's balances at an instant: those after the last entry at or before it.</summary>
/// <param name="Sequence">The entry whose balances these are; 0 when no entry was at or before the instant.</param>
/// <param name="AvailableMinor">Available, counting money reserved by movements in flight as available (see <see cref="HistoryEntry"/>).</param>
[GenerateSerializer, Immutable, Alias("Transactor.BalanceAt")]
public sealed record BalanceAt(
    [property: Id(0)] BalanceAtStatus Status,
    [property: Id(1)] AccountSnapshot Account,
    [property: Id(2)] long Sequence,
    [property: Id(3)] DateTimeOffset? EntryAt,
    [property: Id(4)] long AvailableMinor,
    [property: Id(5)] long HeldMinor,
    [property: Id(6)] long PendingDebitMinor,
    [property: Id(7)] long PendingCreditMinor);

/// <summary>
/// Reads accounts' histories: the newest entries from the account, older ones from their page rows
/// in ledger storage, so that the account itself only answers one cheap read. Stateless: every
/// silo runs its own activations (key 0).
/// </summary>
[Alias("Transactor.IAccountHistoryGrain")]
public interface IAccountHistoryGrain : IGrainWithIntegerKey
{
    /// <summary>Up to <paramref name="limit"/> entries of the account after sequence <paramref name="afterSequence"/>; null when the account is not open.</summary>
    [Alias("Entries")]
    Task<HistoryEntries?> Entries(string accountId, long afterSequence, int limit);

    /// <summary>
    /// Up to <paramref name="limit"/> entries of the account after sequence <paramref name="afterSequence"/>
    /// whose metadata holds every key/value of <paramref name="filter"/>, looking at no more than the
    /// silo's <c>TransferOptions.HistoryScanPerRead</c> entries: fewer (even none) may come back while
    /// more follow, and <see cref="HistoryEntries.ScannedThrough"/> says where to continue. Null when the account is not open.
    /// </summary>
    [Alias("EntriesMatching")]
    Task<HistoryEntries?> EntriesMatching(string accountId, long afterSequence, int limit, MetadataMap filter);

    /// <summary>The account's balances at <paramref name="at"/>; null when the account is not open.</summary>
    [Alias("BalanceAt")]
    Task<BalanceAt?> BalanceAt(string accountId, DateTimeOffset at);
}
