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
    ILogger<TransferCoordinatorGrain> logger) : Grain, ITransferCoordinatorGrain
{
    /// <summary>How often one coordinator renews its lease while prepares queue behind busy accounts, before leaving the movement to recovery.</summary>
    public const int MaxLeaseRenewals = 3;

    private readonly TransferOptions _options = options.Value;

    public async Task<TransferResult> Execute(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var invalid = Validate(request);
        if (invalid != RejectionReason.None)
        {
            instruments.Rejected(invalid);
            return new TransferResult(request, TransferStatus.Rejected, invalid, null, null, time.GetUtcNow());
        }

        // Only movements the silo has admitted begin; a refused one leaves no trace.
        var admitted = await admission.Enter();
        try
        {
            var shard = GrainFactory.GetRecoveryShard(request.TransferId);
            var ticket = await shard.Begin(request);
            if (ticket.Conflict)
            {
                instruments.Rejected(RejectionReason.IdempotencyKeyReused);
                return new TransferResult(request, TransferStatus.Rejected, RejectionReason.IdempotencyKeyReused, null, null, ticket.Record!.CreatedAt);
            }

            if (ticket.Result is { } ended)
            {
                return ended with { Replayed = true };
            }

            if (ticket.Lease is not { } lease)
            {
                // Another coordinator is driving it (or its lease has not run out): every caller sees
                // the one outcome. Waiting for it takes no place from movements that can progress.
                admitted.Dispose();
                var awaited = await shard.WaitForResult(request.TransferId, _options.WaitTimeout)
                    ?? throw new InvalidOperationException($"Transfer '{request.TransferId}' has no record after Begin.");
                return awaited with { Replayed = true };
            }

            var result = await Drive(shard, ticket.Record!, lease, ticket.LeaseId);
            return ticket.Created ? result : result with { Replayed = true };
        }
        finally
        {
            admitted.Dispose();
        }
    }

    public async Task Recover(string transferId)
    {
        var shard = GrainFactory.GetRecoveryShard(transferId);
        try
        {
            // Ended, or driven by someone else: nothing to do here.
            if (await shard.Claim(transferId) is { Record: { } record, Lease: { } lease } ticket)
            {
                instruments.Recovered();
                var result = await Drive(shard, record, lease, ticket.LeaseId);
                LogRecovered(logger, transferId, result.Status, result.Reason);
            }
        }
        catch (Exception ex)
        {
            // The movement stays listed: the next sweep of its shard tries again.
            LogRecoveryFailed(logger, ex, transferId);
        }
    }

    private async Task<TransferResult> Drive(IRecoveryShardGrain shard, TransferRecord record, TimeSpan lease, Guid leaseId)
    {
        var started = time.GetTimestamp();
        var request = record.Request;
        var deadline = time.GetUtcNow() + lease - _options.ClockSkewAllowance;
        var (first, second) = OrderedSides(request);
        instruments.Started();
        var status = TransferStatus.Pending;
        var reason = RejectionReason.None;
        try
        {
            faults.OnStep(TransferStep.AfterBegin, request.TransferId);
            if (record.Status == TransferStatus.Pending)
            {
                var prepared = await PrepareAll(request, first, second, deadline);
                for (var renewals = 0; prepared is null; renewals++)
                {
                    // Out of lease (busy accounts): renew it if nobody has taken it over, and prepare
                    // again (idempotent); else whoever holds the next lease (recovery, a retry) finishes.
                    if (renewals == MaxLeaseRenewals || await shard.RenewLease(request.TransferId, leaseId) is not { } renewed)
                    {
                        return StillPending(record);
                    }

                    deadline = time.GetUtcNow() + renewed - _options.ClockSkewAllowance;
                    prepared = await PrepareAll(request, first, second, deadline);
                }

                faults.OnStep(TransferStep.AfterPrepare, request.TransferId);
                // The commit point: the decision is written into the record the shard keeps, only
                // within the lease, like every prepare.
                record = await shard.Decide(request.TransferId, prepared.Value, deadline)
                    ?? throw new InvalidOperationException($"Transfer '{request.TransferId}' was decided while its recovery shard does not list it.");
                if (record.Status == TransferStatus.Pending)
                {
                    // Out of lease before the decision: whoever holds the next lease finishes.
                    return StillPending(record);
                }

                faults.OnStep(TransferStep.AfterDecide, request.TransferId);
            }

            var commit = record.Status == TransferStatus.Committed;
            var firstSnapshot = await Apply(first.AccountId, request.TransferId, commit);
            faults.OnStep(TransferStep.AfterFirstApply, request.TransferId);
            var secondSnapshot = second is { } s ? await Apply(s.AccountId, request.TransferId, commit) : null;

            var debit = first.Entry == EntrySide.Debit ? firstSnapshot : secondSnapshot;
            var credit = first.Entry == EntrySide.Credit ? firstSnapshot : secondSnapshot;
            // One-way: the client hears the outcome now; the shard writes it into the movement's row.
            await shard.Complete(request.TransferId, debit, credit);
            status = record.Status;
            reason = record.Reason;
            return new TransferResult(request, record.Status, record.Reason, debit, credit, record.CreatedAt);
        }
        finally
        {
            instruments.Ended(status, reason, time.GetElapsedTime(started));
        }
    }

    /// <summary>The answer of a driver that lost its lease before the decision: the next lease holder finishes.</summary>
    private static TransferResult StillPending(TransferRecord record) =>
        new(record.Request, TransferStatus.Pending, RejectionReason.None, null, null, record.CreatedAt);

    /// <summary>Prepares each side in ascending account-id order. Null when the lease ran out first.</summary>
    private async Task<RejectionReason?> PrepareAll(TransferRequest request, Side first, Side? second, DateTimeOffset deadline)
    {
        var currency = request.Currency;
        Side[] sides = second is { } s ? [first, s] : [first];
        foreach (var side in sides)
        {
            if (time.GetUtcNow() >= deadline)
            {
                return null;
            }

            var account = GrainFactory.GetAccount(side.AccountId);
            var result = await account.Prepare(new PrepareRequest(request.TransferId, side.Entry, request.AmountMinor, currency, deadline, External: request.Kind != TransferKind.Transfer));
            switch (result.Status)
            {
                case PrepareStatus.Expired:
                    return null;
                case PrepareStatus.Rejected:
                    return result.Reason;
            }

            // A request without a currency takes the first account's; the second must match it.
            currency ??= result.Currency;
            if (side == first)
            {
                faults.OnStep(TransferStep.AfterFirstPrepare, request.TransferId);
            }
        }

        return RejectionReason.None;
    }

    private Task<AccountSnapshot?> Apply(string accountId, string transferId, bool commit)
    {
        var account = GrainFactory.GetAccount(accountId);
        return commit ? account.Commit(transferId) : account.Abort(transferId);
    }

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

        return RejectionReason.None;
    }

    private readonly record struct Side(string AccountId, EntrySide Entry);

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered transfer {TransferId}: {Status} ({Reason})")]
    private static partial void LogRecovered(ILogger logger, string transferId, TransferStatus status, RejectionReason reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recovery of transfer {TransferId} failed; the next sweep will try again")]
    private static partial void LogRecoveryFailed(ILogger logger, Exception exception, string transferId);
}
