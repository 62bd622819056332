namespace Transactor;

/// <summary>
/// Why a money movement was rejected. These are business outcomes, not errors: each has a stable
/// snake_case code (see <see cref="RejectionReasons.ToCode"/>) that clients may rely on.
/// Values are persisted: never renumber them.
/// </summary>
[GenerateSerializer]
public enum RejectionReason
{
    /// <summary>Not rejected.</summary>
    None = 0,

    /// <summary>The debited account's available balance does not cover the amount.</summary>
    InsufficientFunds = 1,

    /// <summary>An account named by the request has not been opened.</summary>
    AccountNotFound = 2,

    /// <summary>An account named by the request is locked and accepts no debits or credits.</summary>
    AccountLocked = 3,

    /// <summary>The request names the same account on both sides.</summary>
    SameAccount = 4,

    /// <summary>The accounts, or the request and an account, are in different currencies.</summary>
    CurrencyMismatch = 5,

    /// <summary>The amount is zero, negative, or above <see cref="Money.MaxAmountMinor"/>.</summary>
    InvalidAmount = 6,

    /// <summary>The idempotency key was used before for a different request.</summary>
    IdempotencyKeyReused = 7,

    /// <summary>Crediting the amount would overflow the account's 64-bit balance.</summary>
    BalanceLimitExceeded = 8,

    /// <summary>No pending (two-phase) transfer that is still on hold has this id: unknown, rejected, or not a pending transfer.</summary>
    PendingTransferNotFound = 9,

    /// <summary>The pending transfer was posted already (with another amount, when this is a post).</summary>
    PendingTransferAlreadyPosted = 10,

    /// <summary>The pending transfer was voided already.</summary>
    PendingTransferAlreadyVoided = 11,

    /// <summary>The pending transfer's timeout ran out: it was voided.</summary>
    PendingTransferExpired = 12,

    /// <summary>A post asked for more than the pending transfer holds.</summary>
    PostExceedsPendingAmount = 13,

    /// <summary>
    /// The caller's API key is a client key that does not own the debited account (checked again by
    /// the account, after the API's own check). The API answers 403 without naming the account's state.
    /// </summary>
    NotOwner = 14,

    /// <summary>
    /// The pending transfer is still being placed (its hold has no outcome yet): nothing was
    /// recorded for the post or void, which may be sent again.
    /// </summary>
    PendingTransferInFlight = 15,
}

/// <summary>Stable codes for <see cref="RejectionReason"/>.</summary>
public static class RejectionReasons
{
    /// <summary>The snake_case code of <paramref name="reason"/>, for example <c>insufficient_funds</c>.</summary>
    public static string ToCode(this RejectionReason reason) => reason switch
    {
        RejectionReason.None => "none",
        RejectionReason.InsufficientFunds => "insufficient_funds",
        RejectionReason.AccountNotFound => "account_not_found",
        RejectionReason.AccountLocked => "account_locked",
        RejectionReason.SameAccount => "same_account",
        RejectionReason.CurrencyMismatch => "currency_mismatch",
        RejectionReason.InvalidAmount => "invalid_amount",
        RejectionReason.IdempotencyKeyReused => "idempotency_key_reused",
        RejectionReason.BalanceLimitExceeded => "balance_limit_exceeded",
        RejectionReason.NotOwner => "not_owner",
        RejectionReason.PendingTransferNotFound => "pending_transfer_not_found",
        RejectionReason.PendingTransferAlreadyPosted => "pending_transfer_already_posted",
        RejectionReason.PendingTransferAlreadyVoided => "pending_transfer_already_voided",
        RejectionReason.PendingTransferExpired => "pending_transfer_expired",
        RejectionReason.PostExceedsPendingAmount => "post_exceeds_pending_amount",
        RejectionReason.PendingTransferInFlight => "pending_transfer_in_flight",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "Unknown rejection reason."),
    };

    /// <summary>Every reason that can reject a movement, in code order.</summary>
    public static IReadOnlyList<RejectionReason> All { get; } =
        Enum.GetValues<RejectionReason>().Where(r => r != RejectionReason.None).ToArray();
}
