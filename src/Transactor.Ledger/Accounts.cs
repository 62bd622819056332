namespace Transactor;

/// <summary>An account's balances at one moment. <c>Total = Available + Held</c>.</summary>
/// <param name="ReservedMinor">Money debited by movements that are not yet committed (in flight).</param>
/// <param name="Version">Grows by one with every change to the account.</param>
/// <param name="IncomingMinor">Money promised to the account by movements that are not yet committed.</param>
/// <param name="PendingDebitMinor">Money held for pending (two-phase) transfers out of the account: not available, not yet gone.</param>
/// <param name="PendingCreditMinor">Money pending (two-phase) transfers into the account may bring once posted.</param>
/// <param name="AllowOverdraft">True when available may go below zero, down to minus <paramref name="CreditLimitMinor"/>.</param>
/// <param name="CreditLimitMinor">How far below zero available may go; 0 when debits must not exceed credits.</param>
/// <param name="Metadata">The client's key/values given when the account was opened; null for none.</param>
[GenerateSerializer, Immutable, Alias("Transactor.AccountSnapshot")]
public sealed record AccountSnapshot(
    [property: Id(0)] string AccountId,
    [property: Id(1)] string Currency,
    [property: Id(2)] string? Owner,
    [property: Id(3)] long AvailableMinor,
    [property: Id(4)] long HeldMinor,
    [property: Id(5)] long ReservedMinor,
    [property: Id(6)] bool Locked,
    [property: Id(7)] long Version,
    [property: Id(8)] DateTimeOffset OpenedAt,
    [property: Id(9)] long IncomingMinor,
    [property: Id(10)] long PendingDebitMinor = 0,
    [property: Id(11)] long PendingCreditMinor = 0,
    [property: Id(12)] bool AllowOverdraft = false,
    [property: Id(13)] long CreditLimitMinor = 0,
    [property: Id(14)] MetadataMap? Metadata = null)
{
    /// <summary>The lowest available balance the account's limits allow: 0, or minus its credit limit.</summary>
    public long FloorMinor => AllowOverdraft ? -CreditLimitMinor : 0;

    /// <summary>What the account owns: available, held (disputes) and the holds of its pending debits, which are still its own until posted.</summary>
    public long TotalMinor => checked(AvailableMinor + HeldMinor + PendingDebitMinor);
}

/// <summary>Outcome of opening an account.</summary>
[GenerateSerializer]
public enum OpenAccountStatus
{
    /// <summary>The account was opened now.</summary>
    Opened = 0,

    /// <summary>The account was already open with the same currency and owner; nothing changed.</summary>
    AlreadyOpen = 1,

    /// <summary>The account exists with a different currency or owner; nothing changed.</summary>
    Conflict = 2,

    /// <summary>The currency is not an ISO 4217 code.</summary>
    InvalidCurrency = 3,

    /// <summary>The limits are not valid (<see cref="AccountLimits.IsValid"/>).</summary>
    InvalidLimits = 4,
}

/// <summary>The result of <c>IAccountGrain.Open</c>.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.OpenAccountResult")]
public sealed record OpenAccountResult(
    [property: Id(0)] OpenAccountStatus Status,
    [property: Id(1)] AccountSnapshot? Account);

/// <summary>Which side of a movement an account is on.</summary>
[GenerateSerializer]
public enum EntrySide
{
    /// <summary>Money leaves the account.</summary>
    Debit = 0,

    /// <summary>Money enters the account.</summary>
    Credit = 1,
}

/// <summary>A coordinator's request that an account promise its side of a movement.</summary>
/// <param name="Currency">The movement's currency, or null to accept the account's own.</param>
/// <param name="External">True for a deposit or withdrawal; a committed external credit can be disputed.</param>
/// <param name="Epoch">
/// The fencing token of the driver's lease (<c>DriveTicket.Epoch</c>). An account that has
/// prepared the movement under a later epoch refuses it (<see cref="PrepareStatus.Superseded"/>), so
/// a driver that lost its lease cannot overwrite its successor's prepare. (Id 4 held a deadline in
/// earlier versions; it is not reused.)
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.PrepareRequest")]
public sealed record PrepareRequest(
    [property: Id(0)] string TransferId,
    [property: Id(1)] EntrySide Side,
    [property: Id(2)] long AmountMinor,
    [property: Id(3)] string? Currency,
    [property: Id(6)] long Epoch,
    [property: Id(5)] bool External = false,
    [property: Id(7)] HoldStep Step = HoldStep.None,
    [property: Id(8)] string? PendingTransferId = null,
    [property: Id(9)] string? CounterpartyAccountId = null,
    [property: Id(10)] bool Expiry = false);

/// <summary>
/// How far an account's debits may go. The default, <see cref="Default"/>, is "debits must not
/// exceed credits": available never goes below zero. With <see cref="AllowOverdraft"/>, available
/// may go down to minus <see cref="CreditLimitMinor"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.AccountLimits")]
public sealed record AccountLimits(
    [property: Id(0)] bool AllowOverdraft,
    [property: Id(1)] long CreditLimitMinor)
{
    /// <summary>Debits must not exceed credits: available never below zero.</summary>
    public static AccountLimits Default { get; } = new(false, 0);

    /// <summary>The lowest available balance these limits allow.</summary>
    public long FloorMinor => AllowOverdraft ? -CreditLimitMinor : 0;

    /// <summary>
    /// True for limits an account may have: a credit limit from 0 to <see cref="Money.MaxAmountMinor"/>
    /// with an overdraft, and none without one.
    /// </summary>
    public bool IsValid => AllowOverdraft ? CreditLimitMinor is >= 0 and <= Money.MaxAmountMinor : CreditLimitMinor == 0;
}

/// <summary>Outcome of changing an account's limits. Values are stable: never renumber them.</summary>
[GenerateSerializer]
public enum SetLimitsStatus
{
    /// <summary>The limits are now the ones asked for (changed, or already so).</summary>
    Changed = 0,

    /// <summary>The account is not open.</summary>
    AccountNotFound = 1,

    /// <summary>The limits are not valid (<see cref="AccountLimits.IsValid"/>).</summary>
    InvalidLimits = 2,

    /// <summary>The account's available balance is below what the new limits allow; nothing changed.</summary>
    BalanceBelowLimit = 3,
}

/// <summary>The result of <c>IAccountGrain.SetLimits</c>.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.SetLimitsResult")]
public sealed record SetLimitsResult(
    [property: Id(0)] SetLimitsStatus Status,
    [property: Id(1)] AccountSnapshot? Account);

/// <summary>
/// The part an entry plays in a pending (two-phase) transfer. Values are persisted: never renumber them.
/// </summary>
[GenerateSerializer]
public enum HoldStep
{
    /// <summary>An ordinary movement: applying it moves the money.</summary>
    None = 0,

    /// <summary>The first phase: prepared like a movement, and applying it keeps the amount on hold on each side.</summary>
    Hold = 1,

    /// <summary>Posts a hold: the entry's amount (at most the hold's) moves, the rest of the hold returns to available.</summary>
    Post = 2,

    /// <summary>Voids a hold (on request or when it expires): the whole hold returns to available.</summary>
    Void = 3,
}

/// <summary>Outcome of a prepare.</summary>
[GenerateSerializer]
public enum PrepareStatus
{
    /// <summary>The account promised its side (or had already promised it).</summary>
    Prepared = 0,

    /// <summary>The account refused, for <see cref="PrepareResult.Reason"/>.</summary>
    Rejected = 1,

    /// <summary>
    /// The account has prepared the movement under a later epoch: a newer driver holds it, and this
    /// request's driver must stop. Nothing changed.
    /// </summary>
    Superseded = 2,
}

/// <summary>The result of <c>IAccountGrain.Prepare</c>.</summary>
/// <param name="Currency">The account's currency, when the account is open.</param>
[GenerateSerializer, Immutable, Alias("Transactor.PrepareResult")]
public sealed record PrepareResult(
    [property: Id(0)] PrepareStatus Status,
    [property: Id(1)] RejectionReason Reason,
    [property: Id(2)] string? Currency);
