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

    /// <summary>How long a driver waits for its shard to note an outcome before it answers anyway (liveness only, see <see cref="NoteOutcome"/>).</summary>
    public static readonly TimeSpan NoteOutcomeTimeout = TimeSpan.FromSeconds(2);

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

    public Task<TransferResult> EndPending(string pendingTransferId, TransferPhase phase, long? amountMinor) =>
        EndPendingWithMetadata(pendingTransferId, phase, amountMinor, null);

    public async Task<TransferResult> EndPendingWithMetadata(string pendingTransferId, TransferPhase phase, long? amountMinor, MetadataMap? metadata)
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
        var request = new TransferRequest(endId, held.DebitAccountId, held.CreditAccountId, endMinor, held.Currency, phase, null, pendingTransferId, Metadata: metadata);
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
        try
        {
            var shard = GrainFactory.GetRecoveryShard(request.TransferId);
            // The lease runs, for liveness, from before it was asked for: never from its late answer.
            var asked = time.GetTimestamp();
            var ticket = await BeginAsDriver(shard, request);
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
                    ticket = await BeginAsDriver(shard, request);
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

    public async Task<IReadOnlyList<BatchItemOutcome>> ExecuteMany(IReadOnlyList<TransferRequest> requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (requests.Count > BatchItemOutcome.MaxItems)
        {
            throw new ArgumentException($"At most {BatchItemOutcome.MaxItems} movements go in one call, not {requests.Count}.", nameof(requests));
        }

        foreach (var request in requests)
        {
            ArgumentNullException.ThrowIfNull(request, nameof(requests));
            CheckPhase(request);
        }

        // All at once, on this activation, each admitted by the silo on its own as a call of its own
        // would be. An item still running at the deadline is answered "unavailable" (its outcome is
        // not known yet; a retry of its id learns it) and goes on: the call's caller is not held
        // past its timeout by one slow item while the others' outcomes are known. Liveness only.
        var items = new Task<BatchItemOutcome>[requests.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = ExecuteItem(requests[i]);
        }

        try
        {
            // No item faults (ExecuteItem turns every failure into an outcome); the wait's timer goes
            // when they end, so a call leaves none behind.
            await Task.WhenAll(items).WaitAsync(_options.BatchItemDeadline, time);
        }
        catch (TimeoutException)
        {
            // Those still running are answered below.
        }

        return [.. items.Select(item => item.IsCompletedSuccessfully
            ? item.Result
            : new BatchItemOutcome(null, BatchItemFailure.Unavailable, $"Still running after {_options.BatchItemDeadline.TotalSeconds:0.#} s; it is applied at most once, and a retry with its id learns its outcome."))];
    }

    /// <summary>One item of <see cref="ExecuteMany"/>: what <see cref="Execute"/> answers, or why it does not.</summary>
    private async Task<BatchItemOutcome> ExecuteItem(TransferRequest request)
    {
        try
        {
            return new BatchItemOutcome(await ExecuteRecorded(request, time.GetTimestamp()));
        }
        catch (LedgerOverloadedException ex)
        {
            return new BatchItemOutcome(null, BatchItemFailure.Overloaded, ex.Message);
        }
        catch (Exception ex)
        {
            // As a failed Execute: recorded or not, the movement is applied at most once, and a retry
            // with its id gets its one outcome. Logged here, as the caller sees only the kind and message.
            var failure = LedgerFailures.Classify(ex);
            LogBatchItemFailed(logger, failure == BatchItemFailure.Internal ? LogLevel.Error : LogLevel.Warning, ex, request.TransferId, failure);
            return new BatchItemOutcome(null, failure, ex.Message);
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
        try
        {
            var shard = GrainFactory.GetRecoveryShard(request.TransferId);
            var asked = time.GetTimestamp();
            // Once Begin answers, the movement is listed durably on its shard: whatever happens to
            // this silo from now on, its shard's sweep (or a retry) drives it to its end.
            var ticket = await BeginAsDriver(shard, request);
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
        var invalid = Validate(request, out var failedLeg);
        if (invalid == RejectionReason.None)
        {
            return null;
        }

        instruments.Rejected(invalid);
        events.Ended(request, TransferStatus.Rejected, invalid, startedAt, null, null);
        return new TransferResult(request, TransferStatus.Rejected, invalid, null, null, time.GetUtcNow(), FailedLeg: failedLeg);
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
        try
        {
            var asked = time.GetTimestamp();
            var ticket = await ClaimAsDriver(shard, transferId);
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
        var sides = Sides(request);
        instruments.Started();
        var status = TransferStatus.Pending;
        var reason = RejectionReason.None;
        var sidesToApply = sides.Length;
        try
        {
            faults.OnStep(TransferStep.AfterBegin, request.TransferId);
            if (record.Status == TransferStatus.Pending)
            {
                var prepared = await PrepareAll(request, sides, lease);
                // The furthest any pass got: a later pass can be refused sooner than an earlier one
                // reached (a linked transfer's check reads live state, such as a lock set meanwhile),
                // and every side an earlier pass prepared holds its entry until it is aborted.
                var reached = prepared.Reached;
                for (var renewals = 0; prepared.Reason is null; renewals++)
                {
                    // Out of lease (busy accounts), or superseded: renew it if nobody has taken it over,
                    // and prepare again (idempotent); else whoever holds the next lease finishes.
                    var asked = time.GetTimestamp();
                    if (renewals == MaxLeaseRenewals || await shard.RenewLease(request.TransferId, lease.Epoch) is not { } renewed)
                    {
                        return StillPending(record);
                    }

                    lease = lease with { AskedAt = asked, Length = renewed };
                    prepared = await PrepareAll(request, sides, lease);
                    reached = Math.Max(reached, prepared.Reached);
                }

                faults.OnStep(TransferStep.AfterPrepare, request.TransferId);
                // The commit point: the decision is written into the record the shard keeps, only
                // under the movement's latest epoch. A later one means a successor may be preparing.
                var decision = request.Legs is null
                    ? shard.Decide(request.TransferId, prepared.Reason.Value, lease.Epoch)
                    : shard.DecideLinked(request.TransferId, prepared.Reason.Value, prepared.FailedLeg, lease.Epoch);
                if (await decision is not { } decided)
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
                    // Only this driver ever prepared (the first, and it decided), and every prepare it
                    // sent was answered before it decided: a side none of its passes reached holds
                    // nothing, so it is read, not aborted (which would read storage to be sure). Every
                    // side any pass reached is aborted now, not left to the accounts' look.
                    sidesToApply = reached;
                }

                faults.OnStep(TransferStep.AfterDecide, request.TransferId);
            }

            // The decision's own epoch goes with it, whoever made it: an entry this driver prepared
            // after a successor's decision was applied is released, never applied.
            var commit = record.Status == TransferStatus.Committed;
            await ArmTimeoutOf(record);
            var snapshots = new AccountSnapshot?[sides.Length];
            for (var i = 0; i < sides.Length; i++)
            {
                var side = sides[i];
                var snapshot = i < sidesToApply && !side.CheckOnly
                    ? await Apply(side.AccountId, request, commit, record.DecidedEpoch)
                    : await GrainFactory.GetAccount(side.AccountId).GetSnapshot();
                // Balances only: an account's metadata (up to 16 values) belongs to GET /accounts/{id},
                // not to every movement's row and answer, which would grow with it.
                snapshots[i] = snapshot is null ? null : snapshot with { Metadata = null };
                if (i == 0)
                {
                    faults.OnStep(TransferStep.AfterFirstApply, request.TransferId);
                }
            }

            if (request.Legs is not null)
            {
                AccountSnapshot[] accounts = [.. snapshots.OfType<AccountSnapshot>()];
                await NoteOutcome(shard, shard.CompleteLinked(request.TransferId, accounts), request.TransferId, lease.Epoch);
                events.Ended(request, record.Status, record.Reason, startedAt, null, null);
                status = record.Status;
                reason = record.Reason;
                return new TransferResult(request, record.Status, record.Reason, null, null, record.CreatedAt, FailedLeg: record.FailedLeg, Accounts: accounts);
            }

            var debit = sides[0].Entry == EntrySide.Debit ? snapshots[0] : sides.Length > 1 ? snapshots[1] : null;
            var credit = sides[0].Entry == EntrySide.Credit ? snapshots[0] : sides.Length > 1 ? snapshots[1] : null;
            // The shard notes the outcome before the client hears it, and writes it into the movement's row after.
            await NoteOutcome(shard, shard.Complete(request.TransferId, debit, credit), request.TransferId, lease.Epoch);
            events.Ended(request, record.Status, record.Reason, startedAt, debit, credit);
            status = record.Status;
            reason = record.Reason;
            return new TransferResult(request, record.Status, record.Reason, debit, credit, record.CreatedAt);
        }
        finally
        {
            instruments.Ended(status, reason, time.GetElapsedTime(started));
        }
    }

    /// <summary>
    /// Waits until the shard has noted the outcome, so that a read of the key after the client's
    /// answer gets it. The outcome stands whether or not the shard answers: every account has
    /// applied it. When the shard does not answer in time (its silo died, the message or its answer
    /// was lost or is late, its list could not be written), the driver gives its lease back, so that
    /// a retry completes the movement at once rather than after the lease; until a retry or the
    /// shard's sweep does, reads of the key may answer pending. The wait is bounded so that the
    /// client is not kept from an outcome that is already final.
    /// </summary>
    private async Task NoteOutcome(IRecoveryShardGrain shard, Task noting, string transferId, long epoch)
    {
        // A late failure, after the wait gave up, is observed here rather than left unobserved.
        noting.Ignore();
        try
        {
            await noting.WaitAsync(NoteOutcomeTimeout, time);
        }
        catch (Exception ex)
        {
            LogOutcomeNotNoted(logger, ex, transferId);
            // One-way; refused while the shard writes the outcome (it noted it after all), harmless when it is gone.
            shard.ReleaseLease(transferId, epoch).Ignore();
        }
    }

    /// <summary>
    /// <paramref name="shard"/>'s <c>Begin</c>, naming this silo as the lease's holder
    /// (<see cref="DriverSiloKey"/>) on this call alone: what an async method sets in the request
    /// context does not flow back to its caller, so the driver's other calls (prepares, the decision,
    /// commits) carry no request context for Orleans to copy into every message.
    /// </summary>
    private async Task<DriveTicket> BeginAsDriver(IRecoveryShardGrain shard, TransferRequest request)
    {
        RequestContext.Set(DriverSiloKey, silo.SiloAddress);
        return await shard.Begin(request);
    }

    /// <summary><paramref name="shard"/>'s <c>Claim</c>, naming this silo as the lease's holder on this call alone (see <see cref="BeginAsDriver"/>).</summary>
    private async Task<DriveTicket> ClaimAsDriver(IRecoveryShardGrain shard, string transferId)
    {
        RequestContext.Set(DriverSiloKey, silo.SiloAddress);
        return await shard.Claim(transferId);
    }

    /// <summary>The outcome of a movement that ended while a superseded driver still worked on it, once that driver's late prepares are released.</summary>
    private async Task<TransferResult> Ended(IRecoveryShardGrain shard, string transferId)
    {
        var ticket = await ClaimAsDriver(shard, transferId);
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

        var commit = ended.Status == TransferStatus.Committed;
        foreach (var side in Sides(ended.Request))
        {
            if (!side.CheckOnly)
            {
                await Apply(side.AccountId, ended.Request, commit, ended.DecidedEpoch);
            }
        }
    }

    /// <summary>The answer of a driver that lost its lease before the decision: the next lease holder finishes.</summary>
    private static TransferResult StillPending(TransferRecord record) =>
        new(record.Request, TransferStatus.Pending, RejectionReason.None, null, null, record.CreatedAt);

    /// <summary>
    /// Prepares each side in ascending account-id order, under the lease's epoch, and says how many
    /// sides it reached before a refusal (all of them when none refused). The reason is null when the
    /// lease ran out first (a liveness limit only: the epoch is what fences) or a later driver has
    /// prepared. For a linked transfer, a refusal names the leg at fault, and once every account has
    /// prepared, each leg's two accounts must share a currency.
    /// </summary>
    private async Task<Preparation> PrepareAll(TransferRequest request, Side[] sides, Lease lease)
    {
        var linked = request.Legs is not null;
        // A movement without a currency takes the first account's; the next must match it.
        var currency = request.Currency;
        var currencies = linked ? new Dictionary<string, string?>(sides.Length, StringComparer.Ordinal) : null;
        for (var i = 0; i < sides.Length; i++)
        {
            var side = sides[i];
            if (time.GetElapsedTime(lease.AskedAt) >= lease.Length)
            {
                return new(null, i, null);
            }

            if (side.CheckOnly || (side.DebitedByLeg && side.Entry == EntrySide.Credit && Caller.Client is not null))
            {
                var (refused, found) = await Check(side);
                if (refused != RejectionReason.None)
                {
                    return new(refused, i, FailedLeg(request, side, refused));
                }

                currencies?.Add(side.AccountId, found);
            }

            if (!side.CheckOnly)
            {
                var account = GrainFactory.GetAccount(side.AccountId);
                var result = await account.Prepare(new PrepareRequest(
                    request.TransferId, side.Entry, side.AmountMinor, linked ? side.Currency : currency, lease.Epoch,
                    External: request.Kind is TransferKind.Deposit or TransferKind.Withdrawal, StepOf(request.Phase), request.PendingTransferId,
                    // A linked transfer's account may face several others: its history names none.
                    linked ? null : side.Entry == EntrySide.Debit ? request.CreditAccountId : request.DebitAccountId,
                    Expiry: request.Phase == TransferPhase.Expire));
                switch (result.Status)
                {
                    case PrepareStatus.Superseded:
                        return new(null, i, null);
                    case PrepareStatus.Rejected:
                        return new(result.Reason, i, FailedLeg(request, side, result.Reason));
                }

                currency ??= result.Currency;
                currencies?.TryAdd(side.AccountId, result.Currency);
            }

            if (i == 0)
            {
                faults.OnStep(TransferStep.AfterFirstPrepare, request.TransferId);
            }
        }

        if (request.Legs is { } legs)
        {
            for (var leg = 0; leg < legs.Count; leg++)
            {
                if (currencies![legs[leg].DebitAccountId] != currencies[legs[leg].CreditAccountId])
                {
                    return new(RejectionReason.CurrencyMismatch, sides.Length, leg);
                }
            }
        }

        return new(RejectionReason.None, sides.Length, null);
    }

    /// <summary>
    /// Checks an account a linked transfer names without moving money there: one whose legs net to
    /// zero (it must be open, unlocked and of the legs' currency), or one that nets a credit while
    /// a leg debits it (a client key must own it, as it must own any account it debits). Returns its currency.
    /// </summary>
    private async Task<(RejectionReason Reason, string? Currency)> Check(Side side)
    {
        var account = await GrainFactory.GetAccount(side.AccountId).GetSnapshot();
        if (account is null)
        {
            return (RejectionReason.AccountNotFound, null);
        }

        if (side.CheckOnly && side.Currency is not null && side.Currency != account.Currency)
        {
            return (RejectionReason.CurrencyMismatch, account.Currency);
        }

        if (side.CheckOnly && account.Locked)
        {
            return (RejectionReason.AccountLocked, account.Currency);
        }

        if (side.DebitedByLeg && !Caller.MayDebit(account.Owner))
        {
            LogNotOwner(logger, side.AccountId);
            return (RejectionReason.NotOwner, account.Currency);
        }

        return (RejectionReason.None, account.Currency);
    }

    /// <summary>
    /// The leg of a linked transfer to blame for <paramref name="reason"/>, refused by the account of
    /// <paramref name="side"/>: the first leg that asks of the account what it refused (a debit for
    /// funds or ownership, a credit for a balance limit, a currency for a currency), else the first
    /// leg that names the account. Null for any other movement.
    /// </summary>
    private static int? FailedLeg(TransferRequest request, Side side, RejectionReason reason)
    {
        if (request.Legs is not { } legs)
        {
            return null;
        }

        int? naming = null;
        for (var i = 0; i < legs.Count; i++)
        {
            var leg = legs[i];
            var debits = leg.DebitAccountId == side.AccountId;
            var credits = leg.CreditAccountId == side.AccountId;
            if (!debits && !credits)
            {
                continue;
            }

            naming ??= i;
            var blamed = reason switch
            {
                RejectionReason.InsufficientFunds or RejectionReason.NotOwner => debits,
                RejectionReason.BalanceLimitExceeded => credits,
                RejectionReason.CurrencyMismatch => leg.Currency is not null,
                _ => false,
            };
            if (blamed)
            {
                return i;
            }
        }

        return naming;
    }

    /// <summary>Applies (commit) or releases (abort) the movement on one account; an apply carries the movement's metadata into the account's history entry.</summary>
    private Task<AccountSnapshot?> Apply(string accountId, TransferRequest request, bool commit, long decidedEpoch)
    {
        var account = GrainFactory.GetAccount(accountId);
        return commit ? account.CommitWithMetadata(request.TransferId, decidedEpoch, request.Metadata) : account.Abort(request.TransferId, decidedEpoch);
    }

    private static HoldStep StepOf(TransferPhase phase) => phase switch
    {
        TransferPhase.Immediate => HoldStep.None,
        TransferPhase.Pending => HoldStep.Hold,
        TransferPhase.Post => HoldStep.Post,
        TransferPhase.Void or TransferPhase.Expire => HoldStep.Void,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, "Unknown transfer phase."),
    };

    /// <summary>
    /// The accounts of a movement with what each is asked for, in the order every coordinator calls
    /// them: ascending ordinal id. A linked transfer asks each account once, for the net of its legs
    /// (docs/transfers.md, "Linked transfers"): a debit, a credit, or, where the legs cancel out, a check.
    /// </summary>
    private static Side[] Sides(TransferRequest request)
    {
        if (request.Legs is { } legs)
        {
            var net = new SortedDictionary<string, Side>(StringComparer.Ordinal);
            foreach (var leg in legs.Items)
            {
                net[leg.DebitAccountId] = Add(net.GetValueOrDefault(leg.DebitAccountId), leg.DebitAccountId, -leg.AmountMinor, leg.Currency, debited: true);
                net[leg.CreditAccountId] = Add(net.GetValueOrDefault(leg.CreditAccountId), leg.CreditAccountId, leg.AmountMinor, leg.Currency, debited: false);
            }

            return [.. net.Values.Select(side => side.NetMinor switch
            {
                < 0 => side with { Entry = EntrySide.Debit, AmountMinor = -side.NetMinor },
                > 0 => side with { Entry = EntrySide.Credit, AmountMinor = side.NetMinor },
                _ => side with { CheckOnly = true },
            })];
        }

        var debit = request.DebitAccountId is { } d ? new Side(d, EntrySide.Debit, request.AmountMinor, request.Currency) : (Side?)null;
        var credit = request.CreditAccountId is { } c ? new Side(c, EntrySide.Credit, request.AmountMinor, request.Currency) : (Side?)null;
        return (debit, credit) switch
        {
            ({ } a, { } b) => string.CompareOrdinal(a.AccountId, b.AccountId) < 0 ? [a, b] : [b, a],
            ({ } a, null) => [a],
            (null, { } b) => [b],
            _ => throw new ArgumentException("A movement names at least one account.", nameof(request)),
        };

        static Side Add(Side sum, string accountId, long amountMinor, string? currency, bool debited) =>
            new(accountId, EntrySide.Debit, 0, sum.Currency ?? currency)
            {
                NetMinor = checked(sum.NetMinor + amountMinor),
                DebitedByLeg = sum.DebitedByLeg || debited,
            };
    }

    internal static RejectionReason Validate(TransferRequest request, out int? failedLeg)
    {
        failedLeg = null;
        if (!Ids.IsValidTransferId(request.TransferId))
        {
            throw new ArgumentException($"Transfer id '{request.TransferId}' is not 1-{Ids.MaxTransferIdLength} printable ASCII characters.", nameof(request));
        }

        if (request.Metadata is { } metadata && !metadata.IsValid)
        {
            throw new ArgumentException($"Metadata holds 1-{MetadataMap.MaxEntries} keys of the allowed characters with values of at most {MetadataMap.MaxValueLength} characters.", nameof(request));
        }

        if (request.Legs is not null)
        {
            return ValidateLinked(request, out failedLeg);
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

    /// <summary>
    /// Validates a linked transfer's legs in order; a refusal names the first leg at fault. Each leg
    /// names two valid, different accounts and a valid amount; the legs on one account agree on its
    /// currency; and what an account nets over all legs is itself an amount (at most 10^15).
    /// </summary>
    private static RejectionReason ValidateLinked(TransferRequest request, out int? failedLeg)
    {
        failedLeg = null;
        var legs = request.Legs!;
        if (legs.Count is 0 or > LinkedTransfers.MaxLegs || legs.Items.Any(l => l is null) || request.DebitAccountId is not null || request.CreditAccountId is not null
            || request.Currency is not null || request.Phase != TransferPhase.Immediate || request.Timeout is not null || request.PendingTransferId is not null)
        {
            throw new ArgumentException($"A linked transfer has 1-{LinkedTransfers.MaxLegs} legs and names no account, currency, timeout or pending transfer of its own.", nameof(request));
        }

        if (request.AmountMinor != legs.TotalMinor)
        {
            throw new ArgumentException($"A linked transfer's amount is the sum of its legs' ({legs.TotalMinor}), not {request.AmountMinor}.", nameof(request));
        }

        var currencies = new Dictionary<string, string>(StringComparer.Ordinal);
        var net = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < legs.Count; i++)
        {
            var leg = legs[i];
            failedLeg = i;
            if (!Ids.IsValidAccountId(leg.DebitAccountId) || !Ids.IsValidAccountId(leg.CreditAccountId))
            {
                return RejectionReason.AccountNotFound;
            }

            if (leg.DebitAccountId == leg.CreditAccountId)
            {
                return RejectionReason.SameAccount;
            }

            if (!Money.IsValidAmount(leg.AmountMinor))
            {
                return RejectionReason.InvalidAmount;
            }

            if (leg.Currency is { } currency)
            {
                if (!Currency.IsValid(currency))
                {
                    return RejectionReason.CurrencyMismatch;
                }

                foreach (var account in new[] { leg.DebitAccountId, leg.CreditAccountId })
                {
                    if (currencies.TryGetValue(account, out var named) && named != currency)
                    {
                        return RejectionReason.CurrencyMismatch;
                    }

                    currencies[account] = currency;
                }
            }

            // At most 100 legs of at most 10^15 each: the sums fit in 64 bits.
            net[leg.DebitAccountId] = net.GetValueOrDefault(leg.DebitAccountId) - leg.AmountMinor;
            net[leg.CreditAccountId] = net.GetValueOrDefault(leg.CreditAccountId) + leg.AmountMinor;
        }

        for (var i = 0; i < legs.Count; i++)
        {
            failedLeg = i;
            if (Math.Abs(net[legs[i].DebitAccountId]) > Money.MaxAmountMinor || Math.Abs(net[legs[i].CreditAccountId]) > Money.MaxAmountMinor)
            {
                return RejectionReason.InvalidAmount;
            }
        }

        failedLeg = null;
        return RejectionReason.None;
    }

    /// <summary>
    /// One account of a movement and what it is asked for. <see cref="NetMinor"/> sums a linked
    /// transfer's legs on it (credits minus debits); <see cref="CheckOnly"/>: its legs cancel out, so it
    /// is checked, not prepared; <see cref="DebitedByLeg"/>: some leg debits it.
    /// </summary>
    private readonly record struct Side(string AccountId, EntrySide Entry, long AmountMinor, string? Currency)
    {
        public long NetMinor { get; init; }

        public bool CheckOnly { get; init; }

        public bool DebitedByLeg { get; init; }
    }

    /// <summary>How far a prepare phase got: the outcome (null: out of lease or superseded), the sides it reached, and for a linked transfer the leg at fault.</summary>
    private readonly record struct Preparation(RejectionReason? Reason, int Reached, int? FailedLeg);

    /// <summary>A lease: its fencing token, and (for liveness only) when it was asked for and how long it lasts.</summary>
    private readonly record struct Lease(long Epoch, long AskedAt, TimeSpan Length);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Account {AccountId}: a linked transfer's leg debits it for a client key that does not own it")]
    private static partial void LogNotOwner(ILogger logger, string accountId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Transfer {TransferId} ended, but its shard did not confirm that it noted the outcome; reads may answer pending until a retry or the shard's sweep completes it")]
    private static partial void LogOutcomeNotNoted(ILogger logger, Exception exception, string transferId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered transfer {TransferId}: {Status} ({Reason})")]
    private static partial void LogRecovered(ILogger logger, string transferId, TransferStatus status, RejectionReason reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Transfer {TransferId} ended under an earlier version, and an account still holds an entry of it: left for an operator (docs/transfers.md, Upgrades)")]
    private static partial void LogEarlierVersionEnded(ILogger logger, string transferId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recovery of transfer {TransferId} failed; the next sweep will try again")]
    private static partial void LogRecoveryFailed(ILogger logger, Exception exception, string transferId);

    [LoggerMessage(Message = "Transfer {TransferId}, an item of a batch, failed ({Failure}); it is applied at most once, and a retry with its id or its shard's sweep finishes it")]
    private static partial void LogBatchItemFailed(ILogger logger, LogLevel level, Exception exception, string transferId, BatchItemFailure failure);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driving transfer {TransferId} in the background after its 202 failed; a retry or its shard's sweep finishes it")]
    private static partial void LogBackgroundDriveFailed(ILogger logger, Exception exception, string transferId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driving transfer {TransferId} under epoch {Epoch} failed; its lease is given back")]
    private static partial void LogDriveFailed(ILogger logger, Exception exception, string transferId, long epoch);
}
