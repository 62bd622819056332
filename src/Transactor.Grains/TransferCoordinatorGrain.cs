using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Transactor.Grains;

/// <summary>
/// Drives movements: record, prepare every account in ascending id order, decide, apply in the same
/// order. Keeps no state, so it is a reentrant stateless worker; see docs/transfers.md.
/// </summary>
[StatelessWorker, Reentrant]
public sealed partial class TransferCoordinatorGrain(
    IOptions<TransferOptions> options,
    ITransferFaults faults,
    TimeProvider time,
    TransactorInstruments instruments,
    TransferAdmission admission,
    LedgerEventPublisher events,
    ILocalSiloDetails silo,
    ILogger<TransferCoordinatorGrain> logger) : Grain, ITransferCoordinatorGrain
{
    /// <summary>How often one coordinator renews its lease while prepares queue behind busy accounts, before leaving the movement to recovery.</summary>
    public const int MaxLeaseRenewals = 3;

    /// <summary>
    /// How long a caller waiting for a movement driven elsewhere waits before it asks again whether
    /// the lease is free: a driver that failed gives its lease back, and one on a silo declared dead
    /// loses it, and then the waiting caller drives at once instead of answering pending.
    /// </summary>
    public static readonly TimeSpan WaitSlice = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The request context entry in which a coordinator names its silo to the recovery shard it asks
    /// for a lease: once that silo is declared dead, the lease is free before its time (liveness only).
    /// </summary>
    internal const string DriverSiloKey = "transactor.driver-silo";

    private readonly TransferOptions _options = options.Value;

    public async Task<TransferResult> Execute(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckPhase(request);
        return await ExecuteRecorded(request, time.GetTimestamp());
    }

    public async Task<TransferResult> EndPending(string pendingTransferId, TransferPhase phase, long? amountMinor)
    {
        ArgumentNullException.ThrowIfNull(pendingTransferId);
        if (phase is not (TransferPhase.Post or TransferPhase.Void or TransferPhase.Expire) || !Ids.IsValidTransferId(PendingTransfers.EndId(pendingTransferId)))
        {
            throw new ArgumentException($"{phase} of '{pendingTransferId}' is not a post, void or expiry of a valid transfer id.", nameof(phase));
        }

        var endId = PendingTransfers.EndId(pendingTransferId);
        var pending = await GrainFactory.GetTransferResult(pendingTransferId);
        if (pending is { Status: TransferStatus.Pending })
        {
            // Still being placed: its outcome decides whether there is a hold to end.
            pending = await GrainFactory.GetRecoveryShard(pendingTransferId).WaitForResult(pendingTransferId, _options.WaitTimeout);
        }

        if (pending is { Status: TransferStatus.Pending })
        {
            // Still being placed after the wait: not "not found", which a client would take as final.
            var placing = new TransferRequest(endId, pending.Request.DebitAccountId, pending.Request.CreditAccountId, amountMinor ?? 0, null, phase, null, pendingTransferId);
            return Refused(placing, RejectionReason.PendingTransferInFlight);
        }

        if (pending is not { Status: TransferStatus.Committed, Request: { Phase: TransferPhase.Pending } held })
        {
            var unknown = new TransferRequest(endId, pending?.Request.DebitAccountId, pending?.Request.CreditAccountId, amountMinor ?? 0, null, phase, null, pendingTransferId);
            return Refused(unknown, RejectionReason.PendingTransferNotFound);
        }

        var endMinor = phase == TransferPhase.Post ? amountMinor ?? held.AmountMinor : held.AmountMinor;
        var request = new TransferRequest(endId, held.DebitAccountId, held.CreditAccountId, endMinor, held.Currency, phase, null, pendingTransferId);
        if (!Money.IsValidAmount(endMinor))
        {
            return Refused(request, RejectionReason.InvalidAmount);
        }

        if (endMinor > held.AmountMinor)
        {
            return Refused(request, RejectionReason.PostExceedsPendingAmount);
        }

        if (phase != TransferPhase.Expire && held.Timeout is { } timeout && time.GetUtcNow() >= pending.CreatedAt + timeout)
        {
            // Its time ran out before its reminder fired: it expires now, and this request finds that.
            await EndPending(pendingTransferId, TransferPhase.Expire, null);
        }

        var ended = await ExecuteRecorded(request, time.GetTimestamp());
        if (phase != TransferPhase.Expire && held.Timeout is not null && ended is { Status: TransferStatus.Committed, Replayed: false })
        {
            // Posted or voided: its timeout has nothing left to do. Best effort (a reminder left
            // behind finds the end at its deadline and unregisters itself); never awaited, as an
            // expiry's own reminder is the caller of this grain when the phase is Expire.
            GrainFactory.GetGrain<IPendingTimeoutGrain>(pendingTransferId).Disarm().Ignore();
        }

        return ended;
    }

    private TransferResult Refused(TransferRequest request, RejectionReason reason)
    {
        instruments.Rejected(reason);
        return new TransferResult(request, TransferStatus.Rejected, reason, null, null, time.GetUtcNow());
    }

    /// <summary>
    /// Checks that <paramref name="request"/> is a movement a client may start (an end of a pending
    /// transfer goes through <see cref="EndPending"/>). A pending transfer's timeout is armed by
    /// whoever drives the hold, once it is decided committed (<see cref="ArmTimeoutOf"/>).
    /// </summary>
    private static void CheckPhase(TransferRequest request)
    {
        if (request.Phase is not (TransferPhase.Immediate or TransferPhase.Pending))
        {
            throw new ArgumentException($"A {request.Phase} is asked for with {nameof(EndPending)}.", nameof(request));
        }
    }

    /// <summary>
    /// Arms the timeout of a hold decided committed, from its record (<c>CreatedAt + Timeout</c>),
    /// before any account applies it and before it completes: every driver that applies the
    /// decision (this one, a retry's, recovery's) arms it again, so a hold that is on the accounts
    /// always has its reminder, whoever drove it and whenever a reminder looked before.
    /// </summary>
    private Task ArmTimeoutOf(TransferRecord record) =>
        record is { Status: TransferStatus.Committed, Request: { Phase: TransferPhase.Pending, Timeout: { } timeout } }
            ? GrainFactory.GetGrain<IPendingTimeoutGrain>(record.Request.TransferId).Arm(record.CreatedAt + timeout)
            : Task.CompletedTask;

    /// <summary>
    /// The rejection when Begin finds another movement under the id: for an end of a pending
    /// transfer, the end that is recorded there (one id ends a pending transfer, whichever way).
    /// </summary>
    private TransferResult Conflicting(TransferRequest request, TransferRecord found)
    {
        var reason = request.PendingTransferId is null ? RejectionReason.IdempotencyKeyReused : found.Request.Phase switch
        {
            TransferPhase.Post => RejectionReason.PendingTransferAlreadyPosted,
            TransferPhase.Void => RejectionReason.PendingTransferAlreadyVoided,
            TransferPhase.Expire => RejectionReason.PendingTransferExpired,
            _ => RejectionReason.IdempotencyKeyReused,
        };
        instruments.Rejected(reason);
        return new TransferResult(request, TransferStatus.Rejected, reason, null, null, found.CreatedAt);
    }

    /// <summary>Runs the protocol for <paramref name="request"/>: record, prepare, decide, apply, complete.</summary>
    private async Task<TransferResult> ExecuteRecorded(TransferRequest request, long startedAt)
    {
        if (Invalid(request, startedAt) is { } invalid)
        {
            return invalid;
        }

        // Only movements the silo has admitted begin; a refused one leaves no trace.
        var admitted = await Admit();
        RequestContext.Set(DriverSiloKey, silo.SiloAddress);
        try
        {
            var shard = GrainFactory.GetRecoveryShard(request.TransferId);
            // The lease runs, for liveness, from before it was asked for: never from its late answer.
            var asked = time.GetTimestamp();
            var ticket = await shard.Begin(request);
            if (ticket.Conflict)
            {
                return Conflicting(request, ticket.Record!);
            }

            if (ticket.Result is { } ended)
            {
                return ended with { Replayed = true };
            }

            if (ticket.Lease is null)
            {
                // Another coordinator is driving it (or its lease has not run out): every caller sees
                // the one outcome. Waiting for it takes no place from movements that can progress.
                admitted.Dispose();
                var waitedFor = Stopwatch.StartNew();
                while (true)
                {
                    // Never negative: a Begin that took longer than the time left would make it so, and
                    // a negative wait is an error (or, at -1 ms, forever).
                    var slice = TimeSpan.FromTicks(Math.Max(0, (_options.WaitTimeout - waitedFor.Elapsed).Ticks));
                    var awaited = await shard.WaitForResult(request.TransferId, slice < WaitSlice ? slice : WaitSlice)
                        ?? throw new InvalidOperationException($"Transfer '{request.TransferId}' has no record after Begin.");
                    if (awaited.Status != TransferStatus.Pending || waitedFor.Elapsed >= _options.WaitTimeout)
                    {
                        return awaited with { Replayed = true };
                    }

                    // Still pending: its driver may have failed or died meanwhile (a lease given back, or
                    // held on a silo declared dead), and then this caller takes over now.
                    asked = time.GetTimestamp();
                    ticket = await shard.Begin(request);
                    if (ticket.Result is { } done)
                    {
                        return done with { Replayed = true };
                    }

                    if (ticket.Lease is not null)
                    {
                        break;
                    }
                }
            }

            var lease = ticket.Lease.Value;

            var result = await DriveOrRelease(shard, ticket.Record!, new Lease(ticket.Epoch, asked, lease), recordedNow: ticket.Created, startedAt);
            return ticket.Created ? result : result with { Replayed = true };
        }
        finally
        {
            admitted.Dispose();
        }
    }

    public async Task<TransferResult> Submit(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckPhase(request);
        var startedAt = time.GetTimestamp();
        if (Invalid(request, startedAt) is { } invalid)
        {
            return invalid;
        }

        var admitted = await Admit();
        var handedOver = false;
        RequestContext.Set(DriverSiloKey, silo.SiloAddress);
        try
        {
            var shard = GrainFactory.GetRecoveryShard(request.TransferId);
            var asked = time.GetTimestamp();
            // Once Begin answers, the movement is listed durably on its shard: whatever happens to
            // this silo from now on, its shard's sweep (or a retry) drives it to its end.
            var ticket = await shard.Begin(request);
            if (ticket.Conflict)
            {
                return Conflicting(request, ticket.Record!);
            }

            if (ticket.Result is { } ended)
            {
                return ended with { Replayed = true };
            }

            var pending = StillPending(ticket.Record!) with { Replayed = !ticket.Created };
            if (ticket.Lease is not { } lease)
            {
                // Someone else drives it (or its lease has not run out): it ends without this caller.
                return pending;
            }

            // Driven in the background by this activation, holding the admission place until it ends.
            handedOver = true;
            DriveInBackground(shard, ticket.Record!, new Lease(ticket.Epoch, asked, lease), ticket.Created, startedAt, admitted).Ignore();
            return pending;
        }
        finally
        {
            if (!handedOver)
            {
                admitted.Dispose();
            }
        }
    }

    private async Task DriveInBackground(IRecoveryShardGrain shard, TransferRecord record, Lease lease, bool recordedNow, long startedAt, System.Threading.RateLimiting.RateLimitLease admitted)
    {
        try
        {
            await DriveOrRelease(shard, record, lease, recordedNow, startedAt);
        }
        catch (Exception ex)
        {
            // Nobody waits for this answer: the movement stays listed, and a retry or the shard's sweep finishes it.
            LogBackgroundDriveFailed(logger, ex, record.Request.TransferId);
        }
        finally
        {
            admitted.Dispose();
        }
    }

    /// <summary>The rejection of a request that fails validation (nothing is recorded), or null when it is valid.</summary>
    private TransferResult? Invalid(TransferRequest request, long startedAt)
    {
        var invalid = Validate(request);
        if (invalid == RejectionReason.None)
        {
            return null;
        }

        instruments.Rejected(invalid);
        events.Ended(events.Event(request, TransferStatus.Rejected, invalid, startedAt, null, null));
        return new TransferResult(request, TransferStatus.Rejected, invalid, null, null, time.GetUtcNow());
    }

    /// <summary>Takes one of the silo's places (docs/transfers.md, Admission); a refusal is counted for the dashboard.</summary>
    private async ValueTask<System.Threading.RateLimiting.RateLimitLease> Admit()
    {
        try
        {
            return await admission.Enter();
        }
        catch (LedgerOverloadedException)
        {
            events.Refused();
            throw;
        }
    }

    public async Task Recover(string transferId)
    {
        var startedAt = time.GetTimestamp();
        var shard = GrainFactory.GetRecoveryShard(transferId);
        RequestContext.Set(DriverSiloKey, silo.SiloAddress);
        try
        {
            var asked = time.GetTimestamp();
            var ticket = await shard.Claim(transferId);
            if (ticket is { Completed: true, Record: { } ended })
            {
                // Asked by an account that holds an entry of a movement that has ended: a late
                // prepare of a superseded driver, which applying the decision again releases.
                await ApplyEnded(ended);
            }
            else if (ticket is { Record: { } record, Lease: { } lease })
            {
                instruments.Recovered();
                var result = await DriveOrRelease(shard, record, new Lease(ticket.Epoch, asked, lease), recordedNow: false, startedAt);
                LogRecovered(logger, transferId, result.Status, result.Reason);
            }

            // Otherwise someone else drives it: nothing to do here.
        }
        catch (Exception ex)
        {
            // The movement stays listed (or the late entry held): the next sweep or check tries again.
            LogRecoveryFailed(logger, ex, transferId);
        }
    }

    /// <summary>
    /// <see cref="Drive"/>; when it fails (a call to a silo that died, a storage fault), gives the
    /// lease back before the failure reaches the caller, so that the caller's retry with the same key,
    /// or recovery, takes over at once instead of waiting for the lease to run out.
    /// </summary>
    private async Task<TransferResult> DriveOrRelease(IRecoveryShardGrain shard, TransferRecord record, Lease lease, bool recordedNow, long startedAt)
    {
        try
        {
            return await Drive(shard, record, lease, recordedNow, startedAt);
        }
        catch (Exception ex) when (ex is not (ArgumentException or InjectedFaultException))
        {
            // A test's injected crash gives nothing back, as a real crash would not.
            LogDriveFailed(logger, ex, record.Request.TransferId, lease.Epoch);
            // One-way, and best effort: if the shard cannot be reached, the lease runs out as before.
            shard.ReleaseLease(record.Request.TransferId, lease.Epoch).Ignore();
            throw;
        }
    }

    /// <param name="recordedNow">True for the driver whose Begin recorded the movement: no driver came before it.</param>
    /// <param name="startedAt">When this driver's caller asked (a <see cref="TimeProvider"/> timestamp): the event's latency runs from there.</param>
    private async Task<TransferResult> Drive(IRecoveryShardGrain shard, TransferRecord record, Lease lease, bool recordedNow, long startedAt)
    {
        var started = time.GetTimestamp();
        var request = record.Request;
        var (first, second) = OrderedSides(request);
        instruments.Started();
        var status = TransferStatus.Pending;
        var reason = RejectionReason.None;
        var sidesToApply = 2;
        try
        {
            faults.OnStep(TransferStep.AfterBegin, request.TransferId);
            if (record.Status == TransferStatus.Pending)
            {
                var (prepared, reached) = await PrepareAll(request, first, second, lease);
                for (var renewals = 0; prepared is null; renewals++)
                {
                    // Out of lease (busy accounts), or superseded: renew it if nobody has taken it over,
                    // and prepare again (idempotent); else whoever holds the next lease finishes.
                    var asked = time.GetTimestamp();
                    if (renewals == MaxLeaseRenewals || await shard.RenewLease(request.TransferId, lease.Epoch) is not { } renewed)
                    {
                        return StillPending(record);
                    }

                    lease = lease with { AskedAt = asked, Length = renewed };
                    (prepared, reached) = await PrepareAll(request, first, second, lease);
                }

                faults.OnStep(TransferStep.AfterPrepare, request.TransferId);
                // The commit point: the decision is written into the record the shard keeps, only
                // under the movement's latest epoch. A later one means a successor may be preparing.
                if (await shard.Decide(request.TransferId, prepared.Value, lease.Epoch) is not { } decided)
                {
                    // Ended by a successor while this driver prepared: its prepares may have reached
                    // an account after the successor applied there, so they are released.
                    return await Ended(shard, request.TransferId);
                }

                record = decided;
                if (record.Status == TransferStatus.Pending)
                {
                    // Fenced out before the decision: whoever holds the next lease finishes.
                    return StillPending(record);
                }

                if (recordedNow && record.Status == TransferStatus.Rejected && record.DecidedEpoch == lease.Epoch)
                {
                    // Only this driver ever prepared (the first, and it decided): a side its prepares
                    // did not reach holds nothing, so it is read, not aborted (which would read storage to be sure).
                    sidesToApply = reached;
                }

                faults.OnStep(TransferStep.AfterDecide, request.TransferId);
            }

            // The decision's own epoch goes with it, whoever made it: an entry this driver prepared
            // after a successor's decision was applied is released, never applied.
            var commit = record.Status == TransferStatus.Committed;
            await ArmTimeoutOf(record);
            var firstSnapshot = sidesToApply > 0
                ? await Apply(first.AccountId, request.TransferId, commit, record.DecidedEpoch)
                : await GrainFactory.GetAccount(first.AccountId).GetSnapshot();
            faults.OnStep(TransferStep.AfterFirstApply, request.TransferId);
            var secondSnapshot = second is not { } s ? null
                : sidesToApply > 1 ? await Apply(s.AccountId, request.TransferId, commit, record.DecidedEpoch)
                : await GrainFactory.GetAccount(s.AccountId).GetSnapshot();

            var debit = first.Entry == EntrySide.Debit ? firstSnapshot : secondSnapshot;
            var credit = first.Entry == EntrySide.Credit ? firstSnapshot : secondSnapshot;
            // One-way: the client hears the outcome now; the shard writes it into the movement's row.
            await shard.Complete(request.TransferId, debit, credit);
            events.Ended(events.Event(request, record.Status, record.Reason, startedAt, debit, credit));
            status = record.Status;
            reason = record.Reason;
            return new TransferResult(request, record.Status, record.Reason, debit, credit, record.CreatedAt);
        }
        finally
        {
            instruments.Ended(status, reason, time.GetElapsedTime(started));
        }
    }

    /// <summary>The outcome of a movement that ended while a superseded driver still worked on it, once that driver's late prepares are released.</summary>
    private async Task<TransferResult> Ended(IRecoveryShardGrain shard, string transferId)
    {
        var ticket = await shard.Claim(transferId);
        if (ticket is { Completed: true, Record: { } ended })
        {
            await ApplyEnded(ended);
        }

        // Ended (or, if its shard's activation changed meanwhile, still being finished): where it stands.
        return await shard.GetResult(transferId) ?? throw new InvalidOperationException($"Transfer '{transferId}' has no record after it was listed.");
    }

    /// <summary>
    /// Applies an ended movement's decision to its accounts again. Every entry of the deciding epoch
    /// was applied before the movement ended, so what an account still holds of it is a late
    /// prepare of a superseded driver (an earlier epoch), which the decision's epoch releases. A
    /// decision of an earlier version (epoch 0) cannot tell the two apart, and is left alone.
    /// </summary>
    private async Task ApplyEnded(TransferRecord ended)
    {
        if (ended.DecidedEpoch == 0)
        {
            LogEarlierVersionEnded(logger, ended.Request.TransferId);
            return;
        }

        var (first, second) = OrderedSides(ended.Request);
        var commit = ended.Status == TransferStatus.Committed;
        await Apply(first.AccountId, ended.Request.TransferId, commit, ended.DecidedEpoch);
        if (second is { } s)
        {
            await Apply(s.AccountId, ended.Request.TransferId, commit, ended.DecidedEpoch);
        }
    }

    /// <summary>The answer of a driver that lost its lease before the decision: the next lease holder finishes.</summary>
    private static TransferResult StillPending(TransferRecord record) =>
        new(record.Request, TransferStatus.Pending, RejectionReason.None, null, null, record.CreatedAt);

    /// <summary>
    /// Prepares each side in ascending account-id order, under the lease's epoch, and says how many
    /// sides answered prepared. The reason is null when the lease ran out first (a liveness limit
    /// only: the epoch is what fences) or a later driver has prepared.
    /// </summary>
    private async Task<(RejectionReason? Reason, int Prepared)> PrepareAll(TransferRequest request, Side first, Side? second, Lease lease)
    {
        var currency = request.Currency;
        Side[] sides = second is { } s ? [first, s] : [first];
        var prepared = 0;
        foreach (var side in sides)
        {
            if (time.GetElapsedTime(lease.AskedAt) >= lease.Length)
            {
                return (null, prepared);
            }

            var account = GrainFactory.GetAccount(side.AccountId);
            var counterparty = side.Entry == EntrySide.Debit ? request.CreditAccountId : request.DebitAccountId;
            var result = await account.Prepare(new PrepareRequest(
                request.TransferId, side.Entry, request.AmountMinor, currency, lease.Epoch, External: request.Kind != TransferKind.Transfer, StepOf(request.Phase), request.PendingTransferId,
                counterparty, Expiry: request.Phase == TransferPhase.Expire));
            switch (result.Status)
            {
                case PrepareStatus.Superseded:
                    return (null, prepared);
                case PrepareStatus.Rejected:
                    return (result.Reason, prepared);
            }

            prepared++;

            // A request without a currency takes the first account's; the second must match it.
            currency ??= result.Currency;
            if (side == first)
            {
                faults.OnStep(TransferStep.AfterFirstPrepare, request.TransferId);
            }
        }

        return (RejectionReason.None, prepared);
    }

    private Task<AccountSnapshot?> Apply(string accountId, string transferId, bool commit, long decidedEpoch)
    {
        var account = GrainFactory.GetAccount(accountId);
        return commit ? account.Commit(transferId, decidedEpoch) : account.Abort(transferId, decidedEpoch);
    }

    private static HoldStep StepOf(TransferPhase phase) => phase switch
    {
        TransferPhase.Immediate => HoldStep.None,
        TransferPhase.Pending => HoldStep.Hold,
        TransferPhase.Post => HoldStep.Post,
        TransferPhase.Void or TransferPhase.Expire => HoldStep.Void,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, "Unknown transfer phase."),
    };

    /// <summary>The accounts of a movement with their sides, in the order every coordinator calls them.</summary>
    private static (Side First, Side? Second) OrderedSides(TransferRequest request)
    {
        var debit = request.DebitAccountId is { } d ? new Side(d, EntrySide.Debit) : (Side?)null;
        var credit = request.CreditAccountId is { } c ? new Side(c, EntrySide.Credit) : (Side?)null;
        return (debit, credit) switch
        {
            ({ } a, { } b) => string.CompareOrdinal(a.AccountId, b.AccountId) < 0 ? (a, b) : (b, a),
            ({ } a, null) => (a, null),
            (null, { } b) => (b, null),
            _ => throw new ArgumentException("A movement names at least one account.", nameof(request)),
        };
    }

    internal static RejectionReason Validate(TransferRequest request)
    {
        if (!Ids.IsValidTransferId(request.TransferId))
        {
            throw new ArgumentException($"Transfer id '{request.TransferId}' is not 1-{Ids.MaxTransferIdLength} printable ASCII characters.", nameof(request));
        }

        if (request.Kind == TransferKind.Invalid)
        {
            return RejectionReason.AccountNotFound;
        }

        if (request.DebitAccountId is { } d && !Ids.IsValidAccountId(d))
        {
            return RejectionReason.AccountNotFound;
        }

        if (request.CreditAccountId is { } c && !Ids.IsValidAccountId(c))
        {
            return RejectionReason.AccountNotFound;
        }

        if (request.Kind == TransferKind.Transfer && request.DebitAccountId == request.CreditAccountId)
        {
            return RejectionReason.SameAccount;
        }

        if (!Money.IsValidAmount(request.AmountMinor))
        {
            return RejectionReason.InvalidAmount;
        }

        if (request.Currency is not null && !Currency.IsValid(request.Currency))
        {
            return RejectionReason.CurrencyMismatch;
        }

        if (request.Phase != TransferPhase.Immediate && request.Kind != TransferKind.Transfer)
        {
            throw new ArgumentException("A pending transfer, and its post or void, names both accounts.", nameof(request));
        }

        if (request.Timeout is { } timeout && (request.Phase != TransferPhase.Pending || !PendingTransfers.IsValidTimeout(timeout)))
        {
            throw new ArgumentException($"A timeout is for a pending transfer, from {PendingTransfers.MinTimeout} to {PendingTransfers.MaxTimeout}.", nameof(request));
        }

        return RejectionReason.None;
    }

    private readonly record struct Side(string AccountId, EntrySide Entry);

    /// <summary>A lease: its fencing token, and (for liveness only) when it was asked for and how long it lasts.</summary>
    private readonly record struct Lease(long Epoch, long AskedAt, TimeSpan Length);

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered transfer {TransferId}: {Status} ({Reason})")]
    private static partial void LogRecovered(ILogger logger, string transferId, TransferStatus status, RejectionReason reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Transfer {TransferId} ended under an earlier version, and an account still holds an entry of it: left for an operator (docs/transfers.md, Upgrades)")]
    private static partial void LogEarlierVersionEnded(ILogger logger, string transferId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recovery of transfer {TransferId} failed; the next sweep will try again")]
    private static partial void LogRecoveryFailed(ILogger logger, Exception exception, string transferId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driving transfer {TransferId} in the background after its 202 failed; a retry or its shard's sweep finishes it")]
    private static partial void LogBackgroundDriveFailed(ILogger logger, Exception exception, string transferId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driving transfer {TransferId} under epoch {Epoch} failed; its lease is given back")]
    private static partial void LogDriveFailed(ILogger logger, Exception exception, string transferId, long epoch);
}
