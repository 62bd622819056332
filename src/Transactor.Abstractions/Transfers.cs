namespace Transactor;

/// <summary>
/// A request to move money. A transfer names both accounts; a deposit names only the credited
/// account and a withdrawal only the debited one (the other side is outside the ledger).
/// </summary>
/// <param name="TransferId">The idempotency key, scoped to the client: the same id always means the same movement.</param>
/// <param name="DebitAccountId">The account the money leaves, or null for a deposit.</param>
/// <param name="CreditAccountId">The account the money enters, or null for a withdrawal.</param>
/// <param name="AmountMinor">The amount in minor units.</param>
/// <param name="Currency">The ISO 4217 currency, or null to take it from the accounts.</param>
/// <param name="Phase">
/// An ordinary movement; the hold of a pending (two-phase) transfer; or the post, void or expiry that
/// ends one (<see cref="PendingTransfers"/>).
/// </param>
/// <param name="Timeout">For a pending transfer: how long it may stay on hold before it is voided; null for no limit.</param>
/// <param name="PendingTransferId">For a post, void or expiry: the pending transfer it ends.</param>
/// <param name="Legs">
/// For a linked transfer: the legs that move together, all or none (<see cref="LinkedTransfers"/>);
/// the request then names no accounts of its own, and <paramref name="AmountMinor"/> is the legs' sum.
/// </param>
/// <param name="Metadata">The client's key/values on the movement, stored with it and returned; null for none.</param>
[GenerateSerializer, Immutable, Alias("Transactor.TransferRequest")]
public sealed record TransferRequest(
    [property: Id(0)] string TransferId,
    [property: Id(1)] string? DebitAccountId,
    [property: Id(2)] string? CreditAccountId,
    [property: Id(3)] long AmountMinor,
    [property: Id(4)] string? Currency,
    [property: Id(5)] TransferPhase Phase = TransferPhase.Immediate,
    [property: Id(6)] TimeSpan? Timeout = null,
    [property: Id(7)] string? PendingTransferId = null,
    [property: Id(8)] TransferLegs? Legs = null,
    [property: Id(9)] MetadataMap? Metadata = null)
{
    /// <summary>A linked transfer: <paramref name="legs"/> move together, all or none.</summary>
    public static TransferRequest Linked(string transferId, IEnumerable<TransferLeg> legs, MetadataMap? metadata = null)
    {
        // An array, not a collection expression's own read-only type, which Orleans cannot serialize.
        var linked = new TransferLegs(legs.ToArray());
        return new(transferId, null, null, linked.TotalMinor, null, Legs: linked, Metadata: metadata);
    }

    /// <summary>The hold of a pending (two-phase) transfer, to be posted or voided later.</summary>
    public static TransferRequest Pending(string transferId, string debitAccountId, string creditAccountId, long amountMinor, string? currency, TimeSpan? timeout = null) =>
        new(transferId, debitAccountId, creditAccountId, amountMinor, currency, TransferPhase.Pending, timeout);

    /// <summary>A deposit of <paramref name="amountMinor"/> into <paramref name="accountId"/>.</summary>
    public static TransferRequest Deposit(string transferId, string accountId, long amountMinor, string? currency = null) =>
        new(transferId, null, accountId, amountMinor, currency);

    /// <summary>A withdrawal of <paramref name="amountMinor"/> from <paramref name="accountId"/>.</summary>
    public static TransferRequest Withdrawal(string transferId, string accountId, long amountMinor, string? currency = null) =>
        new(transferId, accountId, null, amountMinor, currency);

    /// <summary>What kind of movement this is.</summary>
    public TransferKind Kind => Legs is not null ? TransferKind.Linked : (DebitAccountId, CreditAccountId) switch
    {
        (not null, not null) => TransferKind.Transfer,
        (null, not null) => TransferKind.Deposit,
        (not null, null) => TransferKind.Withdrawal,
        _ => TransferKind.Invalid,
    };
}

/// <summary>The kinds of money movement.</summary>
[GenerateSerializer]
public enum TransferKind
{
    /// <summary>Neither account is named.</summary>
    Invalid = 0,

    /// <summary>Between two accounts of the ledger.</summary>
    Transfer = 1,

    /// <summary>Into an account from outside the ledger.</summary>
    Deposit = 2,

    /// <summary>Out of an account to outside the ledger.</summary>
    Withdrawal = 3,

    /// <summary>Several legs between accounts of the ledger that move together, all or none.</summary>
    Linked = 4,
}

/// <summary>One leg of a linked transfer: <paramref name="AmountMinor"/> from one account of the ledger to another.</summary>
/// <param name="Currency">The leg's currency, or null to take it from its accounts (which must then agree).</param>
[GenerateSerializer, Immutable, Alias("Transactor.TransferLeg")]
public sealed record TransferLeg(
    [property: Id(0)] string DebitAccountId,
    [property: Id(1)] string CreditAccountId,
    [property: Id(2)] long AmountMinor,
    [property: Id(3)] string? Currency);

/// <summary>
/// The legs of a linked transfer, in the client's order (a failing leg is named by its index here).
/// Equal when the legs are equal in order, so a retry under the idempotency key is recognised.
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.TransferLegs")]
public sealed record TransferLegs([property: Id(0)] IReadOnlyList<TransferLeg> Items)
{
    /// <summary>The sum of the legs' amounts (at most <see cref="LinkedTransfers.MaxLegs"/> × 10^15: it fits in 64 bits).</summary>
    public long TotalMinor
    {
        get
        {
            // Saturating: a request with out-of-range amounts is refused by validation, not by an overflow here.
            long total = 0;
            foreach (var leg in Items)
            {
                total = leg.AmountMinor > 0 && total > long.MaxValue - leg.AmountMinor ? long.MaxValue : total + Math.Max(0, leg.AmountMinor);
            }

            return total;
        }
    }

    public int Count => Items.Count;

    public TransferLeg this[int index] => Items[index];

    public bool Equals(TransferLegs? other) =>
        ReferenceEquals(this, other) || (other is not null && other.Items.Count == Items.Count && other.Items.SequenceEqual(Items));

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var leg in Items)
        {
            hash.Add(leg);
        }

        return hash.ToHashCode();
    }
}

/// <summary>Rules of linked transfers shared by the API and the grains.</summary>
public static class LinkedTransfers
{
    /// <summary>The most legs one linked transfer may have.</summary>
    public const int MaxLegs = 100;
}

/// <summary>The part a movement plays. Values are persisted: never renumber them.</summary>
[GenerateSerializer]
public enum TransferPhase
{
    /// <summary>An ordinary movement: committed, the money has moved.</summary>
    Immediate = 0,

    /// <summary>A pending (two-phase) transfer: committed, the money is on hold until posted, voided or expired.</summary>
    Pending = 1,

    /// <summary>Posts a pending transfer: its amount (at most the hold's) moves; the rest is released.</summary>
    Post = 2,

    /// <summary>Voids a pending transfer on request: the hold is released.</summary>
    Void = 3,

    /// <summary>Voids a pending transfer whose timeout ran out.</summary>
    Expire = 4,
}

/// <summary>Rules of pending (two-phase) transfers shared by the API and the grains.</summary>
public static class PendingTransfers
{
    /// <summary>The longest timeout a pending transfer may have.</summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromDays(30);

    /// <summary>The shortest timeout: a reminder fires no sooner.</summary>
    public static readonly TimeSpan MinTimeout = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The one transfer id of whatever ends pending transfer <paramref name="pendingTransferId"/> (a
    /// post, a void or its expiry): the first of them recorded under it wins, once, as any movement
    /// under one idempotency key; the others find it there. The API refuses '/' in keys, so no
    /// client's key is ever one of these.
    /// </summary>
    public static string EndId(string pendingTransferId) => pendingTransferId + "/end";

    /// <summary>True for a timeout a pending transfer may have.</summary>
    public static bool IsValidTimeout(TimeSpan timeout) => timeout >= MinTimeout && timeout <= MaxTimeout;
}

/// <summary>Where a movement stands. Values are persisted: never renumber them.</summary>
[GenerateSerializer]
public enum TransferStatus
{
    /// <summary>Recorded, not yet decided; recovery drives it to an end.</summary>
    Pending = 0,

    /// <summary>Decided and applied (or being applied, idempotently) to every account.</summary>
    Committed = 1,

    /// <summary>Decided not to happen; no balance changed.</summary>
    Rejected = 2,
}

/// <summary>The outcome of a movement as a client sees it.</summary>
/// <param name="Request">The request as recorded under the id (for a reused key: the original request).</param>
/// <param name="Status">Committed, rejected, or still pending (an interrupted movement that recovery will finish).</param>
/// <param name="Reason">Why it was rejected; <see cref="RejectionReason.None"/> otherwise.</param>
/// <param name="Debit">The debited account after the movement, when known.</param>
/// <param name="Credit">The credited account after the movement, when known.</param>
/// <param name="CreatedAt">When the movement was first recorded.</param>
/// <param name="Replayed">True when this request found the movement already recorded under its id (a retry).</param>
/// <param name="FailedLeg">For a rejected linked transfer: the index of the leg at fault.</param>
/// <param name="Accounts">For a linked transfer: every account it names, in ascending id order, right after it, when known.</param>
[GenerateSerializer, Immutable, Alias("Transactor.TransferResult")]
public sealed record TransferResult(
    [property: Id(0)] TransferRequest Request,
    [property: Id(1)] TransferStatus Status,
    [property: Id(2)] RejectionReason Reason,
    [property: Id(3)] AccountSnapshot? Debit,
    [property: Id(4)] AccountSnapshot? Credit,
    [property: Id(5)] DateTimeOffset CreatedAt,
    [property: Id(6)] bool Replayed = false,
    [property: Id(7)] int? FailedLeg = null,
    [property: Id(8)] IReadOnlyList<AccountSnapshot>? Accounts = null)
{
    /// <summary>The movement's id.</summary>
    public string TransferId => Request.TransferId;
}

/// <summary>The durable record of a movement: on its <see cref="IRecoveryShardGrain"/> while in flight, in its own row once ended.</summary>
/// <param name="FailedLeg">For a rejected linked transfer: the index of the leg whose account refused it.</param>
/// <param name="DecidedEpoch">
/// The epoch of the lease under which the decision was made: every account's entry for the movement
/// was prepared under it. An entry under an earlier epoch is a late prepare of a superseded driver,
/// which the accounts release instead of applying. 0 for a decision of an earlier version.
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.TransferRecord")]
public sealed record TransferRecord(
    [property: Id(0)] TransferRequest Request,
    [property: Id(1)] TransferStatus Status,
    [property: Id(2)] RejectionReason Reason,
    [property: Id(3)] DateTimeOffset CreatedAt,
    [property: Id(4)] DateTimeOffset? DecidedAt,
    [property: Id(5)] long DecidedEpoch = 0,
    [property: Id(6)] int? FailedLeg = null);

/// <summary>What <see cref="IRecoveryShardGrain.Begin"/> and <see cref="IRecoveryShardGrain.Claim"/> hand to a coordinator.</summary>
/// <param name="Record">The record under the id, or null when there is none.</param>
/// <param name="Lease">
/// How long the caller may drive the movement, or null when it may not (another driver holds it, or
/// it has ended). Only one coordinator drives a movement at a time.
/// </param>
/// <param name="Conflict">True when the id is already recorded for a different request.</param>
/// <param name="Completed">True when every account has applied the decision: <paramref name="Result"/> holds the outcome.</param>
/// <param name="Created">True when this call recorded the movement; false when it was recorded before.</param>
/// <param name="Result">The outcome recorded when the movement ended, with the accounts' balances right after it.</param>
/// <param name="Epoch">
/// The lease's fencing token: it only grows, is stored with the movement's listing before the lease
/// is handed out, and goes with every prepare and the decision. The holder of a later epoch fences
/// out every earlier one, whatever the clocks say. (Id 5 named the lease in earlier versions.)
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.DriveTicket")]
public sealed record DriveTicket(
    [property: Id(0)] TransferRecord? Record,
    [property: Id(1)] TimeSpan? Lease,
    [property: Id(2)] bool Conflict,
    [property: Id(3)] bool Completed,
    [property: Id(4)] bool Created = false,
    [property: Id(6)] TransferResult? Result = null,
    [property: Id(7)] long Epoch = 0);

/// <summary>
/// The outcome of one item of <see cref="ITransferCoordinatorGrain.ExecuteMany"/>: its result, or why
/// it has none. A failed item was applied at most once, as a failed <c>Execute</c>: a retry with the
/// same idempotency key gets its one outcome.
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.BatchItemOutcome")]
public sealed record BatchItemOutcome(
    [property: Id(0)] TransferResult? Result,
    [property: Id(1)] BatchItemFailure Failure = BatchItemFailure.None,
    [property: Id(2)] string? Message = null)
{
    /// <summary>The most items one call carries; the coordinator drives them all at once.</summary>
    public const int MaxItems = 16;
}

/// <summary>
/// Why an item of <see cref="ITransferCoordinatorGrain.ExecuteMany"/> has no result: the kinds the API
/// answers a single request's exception with. Values are serialized: never renumber them.
/// </summary>
[GenerateSerializer]
public enum BatchItemFailure
{
    /// <summary>It has one.</summary>
    None = 0,

    /// <summary>The silo did not admit it (<see cref="LedgerOverloadedException"/>): nothing was recorded.</summary>
    Overloaded = 1,

    /// <summary>A part of the ledger did not answer in time (a silo, a shard): its outcome is not known yet.</summary>
    Unavailable = 2,

    /// <summary>The database failed it: its outcome is not known yet.</summary>
    Storage = 3,

    /// <summary>An unexpected error, logged by the silo: its outcome is not known yet.</summary>
    Internal = 4,
}

/// <summary>
/// How a failed request is told to its client, wherever the failure is met: the API's exception
/// handler for a single request, the coordinator for an item of <see cref="ITransferCoordinatorGrain.ExecuteMany"/>.
/// </summary>
public static class LedgerFailures
{
    /// <summary>How deep <see cref="IsStorage"/> looks: storage providers wrap the database's exception once or twice.</summary>
    private const int MaxInnerExceptions = 8;

    /// <summary>
    /// What <paramref name="exception"/> tells the client: refused for capacity, a part of the ledger
    /// (a silo, a shard) that did not answer, the database, or an unexpected error.
    /// </summary>
    public static BatchItemFailure Classify(Exception exception) => exception switch
    {
        LedgerOverloadedException => BatchItemFailure.Overloaded,
        LedgerUnavailableException or TimeoutException or OrleansMessageRejectionException => BatchItemFailure.Unavailable,
        _ when IsStorage(exception) => BatchItemFailure.Storage,
        _ => BatchItemFailure.Internal,
    };

    /// <summary>
    /// True when the database failed the request: a <see cref="System.Data.Common.DbException"/>
    /// (Npgsql's, carried over the grain call) anywhere in the exception's chain, also inside a storage
    /// provider's <c>OrleansException</c>. Whatever the database said, the ledger applied nothing it
    /// could not store, so the request may be retried with its key.
    /// </summary>
    public static bool IsStorage(Exception? exception)
    {
        for (var depth = 0; exception is not null && depth < MaxInnerExceptions; depth++, exception = exception.InnerException)
        {
            if (exception is System.Data.Common.DbException)
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// A silo refused a movement because as many as it admits are in progress and as many as it queues
/// are waiting (<c>Transactor:Transfers:MaxConcurrentTransfers</c> and <c>MaxQueuedTransfers</c>).
/// Nothing was recorded: a retry with the same idempotency key is safe.
/// </summary>
[GenerateSerializer, Alias("Transactor.LedgerOverloadedException")]
public sealed class LedgerOverloadedException : Exception
{
    public LedgerOverloadedException()
        : base("The silo is at capacity: nothing was recorded; retry later with the same idempotency key.")
    {
    }

    public LedgerOverloadedException(string message)
        : base(message)
    {
    }

    public LedgerOverloadedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// A part of the ledger cannot answer right now (for example a recovery shard reloading its list
/// after a failed write). Nothing the request asked for is lost: a retry with the same idempotency
/// key is safe, and gets the one outcome the key has.
/// </summary>
[GenerateSerializer, Alias("Transactor.LedgerUnavailableException")]
public sealed class LedgerUnavailableException : Exception
{
    public LedgerUnavailableException()
        : base("The ledger cannot answer right now; retry with the same idempotency key.")
    {
    }

    public LedgerUnavailableException(string message)
        : base(message)
    {
    }

    public LedgerUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
