using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>The persisted state of a <see cref="TransferGrain"/>.</summary>
[GenerateSerializer, Alias("Transactor.TransferState")]
public sealed class TransferState
{
    [Id(0)] public TransferRecord? Record { get; set; }

    /// <summary>True once every account has applied the decision.</summary>
    [Id(1)] public bool Completed { get; set; }

    /// <summary>The debited account right after the movement applied, kept so a retry gets the original answer.</summary>
    [Id(2)] public AccountSnapshot? Debit { get; set; }

    /// <summary>The credited account right after the movement applied.</summary>
    [Id(3)] public AccountSnapshot? Credit { get; set; }
}

/// <summary>The durable record of one movement; see <see cref="ITransferGrain"/> and docs/transfers.md.</summary>
public sealed partial class TransferGrain(
    [PersistentState("transfer", StorageNames.Ledger)] IPersistentState<TransferState> state,
    IOptions<TransferOptions> options,
    TimeProvider time) : Grain, ITransferGrain
{
    private readonly TransferOptions _options = options.Value;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTimeOffset? _leaseUntil;
    private Guid _leaseId;

    private bool Completed => state.State.Completed;

    private string TransferId => LedgerGrains.TransferIdOf(this.GetPrimaryKeyString());

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.State.Record is not null && !Completed)
        {
            // A coordinator of the previous activation may still have messages on their way to the
            // accounts. Nobody drives until its lease would have ended; see docs/transfers.md.
            _leaseUntil = time.GetUtcNow() + _options.LeaseDuration;
            // The previous activation may have died between writing the record and listing it.
            await RecoveryShard().Track(TransferId);
        }
    }

    public async Task<DriveTicket> Begin(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var record = state.State.Record;
        if (record is null)
        {
            record = new TransferRecord(request, TransferStatus.Pending, RejectionReason.None, time.GetUtcNow(), null);
            // Listed for recovery first, then recorded: both are durable before any account is
            // touched. In this order a failure leaves either nothing, or a listed id without a
            // record (which recovery drops); never a record that nobody would finish.
            await RecoveryShard().Track(request.TransferId);
            state.State.Record = record;
            await Persist();
            return Ticket(record, created: true);
        }

        if (record.Request != request)
        {
            return new DriveTicket(record, null, Conflict: true, Completed);
        }

        if (!Completed)
        {
            // A first Begin may have failed between its two writes: list the movement again (idempotent).
            await RecoveryShard().Track(request.TransferId);
        }

        return Ticket(record);
    }

    public Task<DriveTicket> Claim() => Task.FromResult(Ticket(state.State.Record));

    public Task<TimeSpan?> RenewLease(Guid leaseId)
    {
        if (Completed || leaseId == Guid.Empty || leaseId != _leaseId)
        {
            return Task.FromResult<TimeSpan?>(null);
        }

        // Only the holder renews, and nobody else has taken the lease since: its old prepares
        // and its new ones come from one driver.
        _leaseUntil = time.GetUtcNow() + _options.LeaseDuration;
        return Task.FromResult<TimeSpan?>(_options.LeaseDuration);
    }

    public async Task<TransferRecord> Decide(RejectionReason reason)
    {
        var record = state.State.Record ?? throw new InvalidOperationException($"Transfer '{TransferId}' was decided before it was begun.");
        if (record.Status != TransferStatus.Pending)
        {
            return record;
        }

        record = record with
        {
            Status = reason == RejectionReason.None ? TransferStatus.Committed : TransferStatus.Rejected,
            Reason = reason,
            DecidedAt = time.GetUtcNow(),
        };
        state.State.Record = record;
        await Persist();
        return record;
    }

    public async Task Complete(AccountSnapshot? debit, AccountSnapshot? credit)
    {
        if (Completed)
        {
            return;
        }

        if (state.State.Record is not { Status: not TransferStatus.Pending })
        {
            throw new InvalidOperationException($"Transfer '{TransferId}' was completed before it was decided.");
        }

        state.State.Completed = true;
        state.State.Debit = debit;
        state.State.Credit = credit;
        _leaseUntil = null;
        _leaseId = Guid.Empty;
        _ended.TrySetResult();
        // Only once the completion is durable may the movement leave its recovery list.
        await Persist();
        await RecoveryShard().Untrack(TransferId);
        DeactivateOnIdle();
    }

    public async Task<TransferResult?> WaitForResult(TimeSpan timeout)
    {
        if (state.State.Record is not null && !Completed)
        {
            try
            {
                await _ended.Task.WaitAsync(timeout, time);
            }
            catch (TimeoutException)
            {
                // Still being driven (or waiting for recovery): report where it stands.
            }
        }

        return Result();
    }

    public Task<TransferResult?> GetResult() => Task.FromResult(Result());

    private TransferResult? Result()
    {
        var record = state.State.Record;
        return record is null ? null : new TransferResult(record.Request, record.Status, record.Reason, state.State.Debit, state.State.Credit, record.CreatedAt);
    }

    /// <summary>
    /// Where the movement stands, with the lease when the caller may drive it: it has a record, has
    /// not ended, and nobody else holds the lease. The lease id goes only to the lease's holder.
    /// </summary>
    private DriveTicket Ticket(TransferRecord? record, bool created = false)
    {
        var lease = record is null || Completed ? null : TakeLease();
        return new DriveTicket(record, lease, Conflict: false, Completed, created, lease is null ? Guid.Empty : _leaseId);
    }

    private TimeSpan? TakeLease()
    {
        var now = time.GetUtcNow();
        if (_leaseUntil is { } until && until > now)
        {
            return null;
        }

        _leaseUntil = now + _options.LeaseDuration;
        _leaseId = Guid.NewGuid();
        return _options.LeaseDuration;
    }

    private Task Persist() => state.WriteOrDeactivate(this);

    private IRecoveryShardGrain RecoveryShard() => GrainFactory.GetRecoveryShard(TransferId);
}
