using Orleans.Concurrency;

namespace Transactor;

/// <summary>
/// One account: its currency, balances and the movements it has promised but not yet applied.
/// An account never calls another grain; coordinators call accounts, always in ascending id order.
/// </summary>
[Alias("Transactor.IAccountGrain")]
public interface IAccountGrain : IGrainWithStringKey
{
    /// <summary>Opens the account. Opening again with the same currency and owner changes nothing.</summary>
    [Alias("Open"), ResponseTimeout(CallTimeouts.Patient)]
    Task<OpenAccountResult> Open(string currency, string? owner);

    /// <summary>
    /// Opens the account with <paramref name="limits"/> and the client's <paramref name="metadata"/> (null for
    /// none). Opening again with the same currency, owner, limits and metadata changes nothing; with others, it is a conflict.
    /// </summary>
    [Alias("OpenWithMetadata"), ResponseTimeout(CallTimeouts.Patient)]
    Task<OpenAccountResult> OpenWithMetadata(string currency, string? owner, AccountLimits limits, MetadataMap? metadata);

    /// <summary>
    /// Opens the account with <paramref name="limits"/>. Opening again with the same currency, owner
    /// and limits changes nothing; with others it is a conflict.
    /// </summary>
    [Alias("OpenWithLimits"), ResponseTimeout(CallTimeouts.Patient)]
    Task<OpenAccountResult> Open(string currency, string? owner, AccountLimits limits);

    /// <summary>
    /// Changes the account's limits (an administrator's act); refused when available is already below
    /// what the new limits allow.
    /// </summary>
    [Alias("SetLimits"), ResponseTimeout(CallTimeouts.Patient)]
    Task<SetLimitsResult> SetLimits(AccountLimits limits);

    /// <summary>
    /// What a reader of the account's history needs from the account itself: its balances, how many
    /// entries it has, how many full pages are in rows of their own, and the newest entries (the
    /// tail, still in the account's row). Null when the account is not open.
    /// </summary>
    [Alias("GetHistoryHead"), ReadOnly]
    Task<HistoryHead?> GetHistoryHead();

    /// <summary>The account's balances, or null when it has not been opened.</summary>
    [Alias("GetSnapshot"), ReadOnly]
    Task<AccountSnapshot?> GetSnapshot();

    /// <summary>
    /// Promises this account's side of a movement: a debit moves the amount from available to
    /// reserved; a credit is checked and remembered. Idempotent by transfer id; refused
    /// (<see cref="PrepareStatus.Superseded"/>) when the movement is prepared here under a later epoch.
    /// </summary>
    /// <remarks>
    /// The aliases of the methods that fencing changed (Prepare, Commit, Abort, Decide, RenewLease)
    /// are new, so that a silo of an earlier version refuses these calls loudly instead of reading
    /// them with its own rules: versions before fencing and after it cannot run in one cluster.
    /// </remarks>
    [Alias("PrepareFenced")]
    Task<PrepareResult> Prepare(PrepareRequest request);

    /// <summary>
    /// Applies a movement decided (committed) under <paramref name="decidedEpoch"/>: an entry
    /// prepared under that epoch is applied; one prepared under an earlier epoch is a superseded
    /// driver's late prepare and is released instead. A transfer id with nothing prepared is a no-op,
    /// checked against storage first (another activation of this account may have prepared it).
    /// </summary>
    [Alias("CommitFenced")]
    Task<AccountSnapshot?> Commit(string transferId, long decidedEpoch);

    /// <summary>
    /// <see cref="Commit"/>, with the movement's <paramref name="metadata"/> (null for none), which
    /// the apply's history entry keeps so that history can be filtered by it. Coordinators call this
    /// one; a silo of a version before it refuses the call (a new alias) rather than drop the metadata.
    /// </summary>
    [Alias("CommitWithMetadata")]
    Task<AccountSnapshot?> CommitWithMetadata(string transferId, long decidedEpoch, MetadataMap? metadata);

    /// <summary>Releases a prepared movement (rejected under <paramref name="decidedEpoch"/>). A transfer id with nothing prepared is a no-op, checked against storage first.</summary>
    [Alias("AbortFenced")]
    Task<AccountSnapshot?> Abort(string transferId, long decidedEpoch);

    /// <summary>Disputes a committed deposit (by its transfer id): its amount moves from available to held.</summary>
    [Alias("Dispute"), ResponseTimeout(CallTimeouts.Patient)]
    Task<DisputeResult> Dispute(string depositId);

    /// <summary>Resolves a disputed deposit: its amount moves from held back to available.</summary>
    [Alias("Resolve"), ResponseTimeout(CallTimeouts.Patient)]
    Task<DisputeResult> Resolve(string depositId);

    /// <summary>Charges back a disputed deposit: its amount leaves held and total, and the account locks.</summary>
    [Alias("Chargeback"), ResponseTimeout(CallTimeouts.Patient)]
    Task<DisputeResult> Chargeback(string depositId);
}

/// <summary>
/// One of <see cref="RecoveryShards.Count"/> keepers of movements, each for the transfer ids that
/// hash to it. While a movement is in flight its shard holds its record (the request, then the
/// decision) in a durable list, and hands the right to drive it (a lease) to one coordinator at a
/// time; once every account has applied the decision, the shard writes the outcome into the
/// movement's own row (<see cref="LedgerGrains.TransferRowId"/>), where retries and reads find it,
/// and takes the movement off its list. A movement is listed before any account changes; each shard
/// keeps one reminder and, when it fires, hands every movement that has been listed too long to a
/// coordinator to finish. Concurrent changes share one storage write of the list (group commit).
/// </summary>
[Alias("Transactor.IRecoveryShardGrain")]
public interface IRecoveryShardGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// Records <paramref name="request"/> as pending if its id is new, and returns once that is
    /// durable, with a lease when the caller should drive it. For an id in use: its record, a lease
    /// when nobody drives it, or its outcome when it has ended; a conflict when the id holds another request.
    /// </summary>
    [Alias("Begin")]
    Task<DriveTicket> Begin(TransferRequest request);

    /// <summary>
    /// Hands the lease to a recovering coordinator when the movement is listed, has not ended and
    /// nobody drives it (with a new epoch, stored first). For an ended movement: its record, completed.
    /// </summary>
    [Alias("Claim")]
    Task<DriveTicket> Claim(string transferId);

    /// <summary>
    /// Extends the lease of epoch <paramref name="epoch"/> when it is still the movement's latest
    /// (nobody took it over). Returns the new lease length, or null when the lease is gone.
    /// </summary>
    [Alias("RenewLeaseFenced")]
    Task<TimeSpan?> RenewLease(string transferId, long epoch);

    /// <summary>
    /// Gives up the lease of epoch <paramref name="epoch"/> when it is still the movement's latest: its
    /// driver failed (a call to a silo that died, say) and drives no more, so a retry or recovery may
    /// take the next lease at once instead of when this one runs out. Liveness only: a call of the
    /// old driver still on its way is fenced by its epoch. One-way.
    /// </summary>
    [Alias("ReleaseLease"), OneWay]
    Task ReleaseLease(string transferId, long epoch);

    /// <summary>
    /// Records the decision of a listed movement, made by the driver of lease <paramref name="epoch"/>;
    /// the first decision wins. A decision from any epoch but the movement's latest is not recorded:
    /// a later driver may be preparing. Returns the listed record once it is durable (still pending
    /// when the decision was fenced out), or null when the movement is not listed.
    /// </summary>
    [Alias("DecideFenced")]
    Task<TransferRecord?> Decide(string transferId, RejectionReason reason, long epoch);

    /// <summary>
    /// <see cref="Decide"/> for a linked transfer, with the index of the leg at fault when
    /// <paramref name="reason"/> rejects it (<see cref="TransferRecord.FailedLeg"/>).
    /// </summary>
    [Alias("DecideLinked")]
    Task<TransferRecord?> DecideLinked(string transferId, RejectionReason reason, int? failedLeg, long epoch);

    /// <summary>
    /// Notes that every account has applied the recorded decision, with the accounts' resulting
    /// balances, and answers once it is noted, so that a read of the key after the driver's answer
    /// gets the outcome; then writes the outcome into the movement's row and takes it off the list.
    /// Another driver may take the movement over meanwhile (a lease given back or held on a silo
    /// declared dead): its ticket carries the decided record, and only one outcome write happens.
    /// </summary>
    [Alias("Complete")]
    Task Complete(string transferId, AccountSnapshot? debit, AccountSnapshot? credit);

    /// <summary><see cref="Complete"/> for a linked transfer, with every account it names (ascending id order) right after it.</summary>
    [Alias("CompleteLinked")]
    Task CompleteLinked(string transferId, IReadOnlyList<AccountSnapshot> accounts);

    /// <summary>The result, waiting up to <paramref name="timeout"/> for a movement driven by someone else to end.</summary>
    [Alias("WaitForResult"), ResponseTimeout(CallTimeouts.Patient)]
    Task<TransferResult?> WaitForResult(string transferId, TimeSpan timeout);

    /// <summary>
    /// The result as it stands, or null when the id is unknown. A movement still listed is pending,
    /// even when decided: a client hears "committed" only once every account has applied it.
    /// </summary>
    [Alias("GetResult")]
    Task<TransferResult?> GetResult(string transferId);

    /// <summary>The movements listed now, oldest first, at most <paramref name="limit"/>.</summary>
    [Alias("List"), ReadOnly]
    Task<IReadOnlyList<string>> List(int limit);
}

/// <summary>
/// The timeout of one pending transfer (the key is its id): an Orleans reminder that voids it once
/// its timeout has run out and then ends. Every driver of the hold arms it from the recorded
/// request once the hold is decided committed, before the movement completes, so a hold that is
/// on the accounts always has it. Reminders are durable (on PostgreSQL, Orleans' ADO.NET reminders
/// table), so the timeout outlives silos and restarts.
/// </summary>
[Alias("Transactor.IPendingTimeoutGrain")]
public interface IPendingTimeoutGrain : IGrainWithStringKey
{
    /// <summary>
    /// Registers the reminder (or moves it) so that it first looks a moment after
    /// <paramref name="deadline"/>, the recorded hold's <c>CreatedAt + Timeout</c>. Idempotent: arming
    /// again with the same deadline changes nothing a client can see.
    /// </summary>
    [Alias("ArmAt")]
    Task Arm(DateTimeOffset deadline);

    /// <summary>Unregisters the reminder: the pending transfer has been posted or voided.</summary>
    [Alias("Disarm")]
    Task Disarm();
}

/// <summary>
/// One shard of the ids of open accounts, in ordinal order, for paging through them. Reach the
/// directory through <see cref="AccountDirectory"/>, which places ids and merges the shards' pages.
/// </summary>
[Alias("Transactor.IAccountDirectoryGrain")]
public interface IAccountDirectoryGrain : IGrainWithIntegerKey
{
    /// <summary>Lists an opened account; returns once the listing is durable. Idempotent.</summary>
    [Alias("Add"), ResponseTimeout(CallTimeouts.Patient)]
    Task Add(string accountId);

    /// <summary>Up to <paramref name="limit"/> ids greater than <paramref name="after"/> (all when null), in ordinal order.</summary>
    [Alias("Page"), ReadOnly]
    Task<AccountPage> Page(string? after, int limit);
}

/// <summary>One page of account ids.</summary>
/// <param name="Next">The cursor for the next page, or null when this is the last.</param>
[GenerateSerializer, Immutable, Alias("Transactor.AccountPage")]
public sealed record AccountPage(
    [property: Id(0)] IReadOnlyList<string> AccountIds,
    [property: Id(1)] string? Next,
    [property: Id(2)] int Total);

/// <summary>How movements map to recovery shards.</summary>
public static class RecoveryShards
{
    /// <summary>The number of recovery shards. Persisted data depends on it: change it only with a migration.</summary>
    public const int Count = 16;

    /// <summary>The shard of <paramref name="transferId"/>: a stable hash (FNV-1a), the same in every process.</summary>
    public static int Of(string transferId)
    {
        ArgumentNullException.ThrowIfNull(transferId);
        return (int)(StableHash.Fnv1a(transferId) % Count);
    }
}

/// <summary>A hash of a string that is the same in every process and every version (unlike <see cref="string.GetHashCode()"/>).</summary>
public static class StableHash
{
    /// <summary>32-bit FNV-1a over the string's UTF-16 code units.</summary>
    public static uint Fnv1a(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var hash = 2166136261u;
        foreach (var c in value)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return hash;
    }
}

/// <summary>
/// Executes movements. Stateless: any number of activations may run; all durable facts live in
/// the <see cref="IRecoveryShardGrain"/>s, the movements' rows and the <see cref="IAccountGrain"/>s.
/// </summary>
[Alias("Transactor.ITransferCoordinatorGrain")]
public interface ITransferCoordinatorGrain : IGrainWithIntegerKey
{
    /// <summary>Executes <paramref name="request"/> (or returns the outcome already recorded under its id).</summary>
    [Alias("Execute"), ResponseTimeout(CallTimeouts.Patient)]
    Task<TransferResult> Execute(TransferRequest request);

    /// <summary>
    /// Records <paramref name="request"/> durably (as <see cref="Execute"/> does before it touches an
    /// account) and answers then, <see cref="TransferStatus.Pending"/>, while this coordinator drives
    /// it to its end in the background; the shard's sweep finishes it if this silo dies. A request
    /// that fails validation, reuses a key, or names a movement that has ended gets the same answer
    /// as from <see cref="Execute"/>.
    /// </summary>
    [Alias("Submit"), ResponseTimeout(CallTimeouts.Patient)]
    Task<TransferResult> Submit(TransferRequest request);

    /// <summary>
    /// Executes each of <paramref name="requests"/> (at most <see cref="BatchItemOutcome.MaxItems"/>)
    /// as <see cref="Execute"/> would, all at once, and answers every outcome in the order asked: one
    /// call for several independent movements (a batch's items), each still a movement of its own
    /// through the whole protocol, admitted by the silo one by one. An item that fails does so alone
    /// (<see cref="BatchItemOutcome.Failure"/>), and so does one still running at the coordinator's
    /// deadline (<c>TransferOptions.BatchItemDeadline</c>, 25 s), which goes on to its end.
    /// </summary>
    [Alias("ExecuteMany"), ResponseTimeout(CallTimeouts.Patient)]
    Task<IReadOnlyList<BatchItemOutcome>> ExecuteMany(IReadOnlyList<TransferRequest> requests);

    /// <summary>
    /// Posts (<see cref="TransferPhase.Post"/>, <paramref name="amountMinor"/> or, when null, the whole
    /// hold), voids (<see cref="TransferPhase.Void"/>) or expires (<see cref="TransferPhase.Expire"/>)
    /// the pending transfer <paramref name="pendingTransferId"/>: a movement of its own under
    /// <see cref="PendingTransfers.EndId"/>, so the first of them wins and each is idempotent.
    /// </summary>
    [Alias("EndPending"), ResponseTimeout(CallTimeouts.Patient)]
    Task<TransferResult> EndPending(string pendingTransferId, TransferPhase phase, long? amountMinor);

    /// <summary>
    /// <see cref="EndPending"/> with the client's <paramref name="metadata"/> on the post or void (null
    /// for none). The metadata is part of the end's request: the same end again must carry the same.
    /// </summary>
    [Alias("EndPendingWithMetadata"), ResponseTimeout(CallTimeouts.Patient)]
    Task<TransferResult> EndPendingWithMetadata(string pendingTransferId, TransferPhase phase, long? amountMinor, MetadataMap? metadata);

    /// <summary>
    /// Drives an interrupted movement to its end; for one that has ended, applies its decision to
    /// its accounts again, which releases an entry a superseded driver prepared there late. Fire and forget.
    /// </summary>
    [Alias("Recover"), OneWay]
    Task Recover(string transferId);
}
