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

/// <summary>
/// One movement's record; see <see cref="ITransferGrain"/> and docs/transfers.md. Until the movement
/// ends, its record (request, then decision) lives on its recovery shard, which shares one write
/// among concurrent movements; this grain writes once, when the movement is complete, the outcome
/// and the resulting balances that retries of the key get back.
/// </summary>
public sealed partial class TransferGrain(
    [PersistentState("transfer", StorageNames.Ledger)] IPersistentState<TransferState> state,
    IOptions<TransferOptions> options,
    TimeProvider time) : Grain, ITransferGrain
{
    /// <summary>How long an activation that has nothing in flight stays for further reads and retries.</summary>
    public static readonly TimeSpan IdleRelease = TimeSpan.FromSeconds(2);

    private readonly TransferOptions _options = options.Value;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTimeOffset? _leaseUntil;
    private Guid _leaseId;
    private string? _transferId;
    private IGrainTimer? _release;

    /// <summary>The record as it stands: the stored one once complete, else the shard's listing once known.</summary>
    private TransferRecord? _record;

    private bool Completed => state.State.Completed;

    private string TransferId => _transferId ??= LedgerGrains.TransferIdOf(this.GetPrimaryKeyString());

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _record = state.State.Record;
        if (_record is not null && !Completed)
        {
            // Stored by an earlier version, which kept the record here until the end: hand it to
            // the shard, which keeps the records of movements in flight now. A coordinator of the
            // previous activation may still be at work: hold the lease back, as for any adoption.
            _leaseUntil = time.GetUtcNow() + _options.LeaseDuration;
            _record = (await RecoveryShard().Track(_record)).Record;
        }
    }

    public async Task<DriveTicket> Begin(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var created = false;
        if (_record is null)
        {
            // Listing the record is what records it: durable before any account is touched.
            var listed = await RecoveryShard().Track(new TransferRecord(request, TransferStatus.Pending, RejectionReason.None, time.GetUtcNow(), null));
            Adopted(listed);
            created = listed.Created;
        }
        else if (!Completed)
        {
            // A retry: coordinators decide on the shard, so only the shard knows whether this
            // movement has been decided since it was listed.
            await Refresh();
        }

        ReleaseIfIdle();
        if (_record!.Request != request)
        {
            return new DriveTicket(_record, null, Conflict: true, Completed);
        }

        return Ticket(created);
    }

    public async Task<DriveTicket> Claim()
    {
        if (!Completed)
        {
            await Refresh();
        }

        ReleaseIfIdle();
        return Ticket();
    }

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

    public async Task Complete(TransferRecord decided, AccountSnapshot? debit, AccountSnapshot? credit)
    {
        ArgumentNullException.ThrowIfNull(decided);
        if (Completed)
        {
            return;
        }

        if (decided.Status == TransferStatus.Pending || _record is null || decided.Request != _record.Request)
        {
            throw new InvalidOperationException($"Transfer '{TransferId}' was completed with a record that is undecided or of another request.");
        }

        _record = decided;
        state.State.Record = decided;
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
        if (_record is not null && !Completed)
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

        ReleaseIfIdle();
        return Result();
    }

    public async Task<TransferResult?> GetResult()
    {
        // A movement begun by an activation that is gone is known only to its shard.
        var record = _record ?? await RecoveryShard().Find(TransferId);
        ReleaseIfIdle();
        return Result(record);
    }

    /// <summary>
    /// An activation is worth its memory only while its movement is in flight here: one that holds
    /// a completed record, or none, goes after <see cref="IdleRelease"/>. Retries and reads of old
    /// keys then read it again from storage; without this, each read would keep one activation per
    /// key in memory for the silo's collection age. Not at once: concurrent retries of one key
    /// would chase a string of activations, each gone as soon as it answered.
    /// </summary>
    private void ReleaseIfIdle()
    {
        if ((_record is null || Completed) && _release is null)
        {
            _release = this.RegisterGrainTimer(
                _ =>
                {
                    _release?.Dispose();
                    _release = null;
                    // A new movement may have begun under this key since (a read of a key before its first use).
                    if (_record is null || Completed)
                    {
                        DeactivateOnIdle();
                    }

                    return Task.CompletedTask;
                },
                IdleRelease,
                Timeout.InfiniteTimeSpan);
        }
    }

    private TransferResult? Result(TransferRecord? record = null)
    {
        record ??= _record;
        return record is null ? null : new TransferResult(record.Request, record.Status, record.Reason, state.State.Debit, state.State.Credit, record.CreatedAt);
    }

    /// <summary>
    /// Reads the listing again before anyone may drive from it. A driver that finds the movement
    /// decided must not prepare again: an account that has applied the decision has forgotten
    /// the movement, and would take a second prepare for a new one.
    /// </summary>
    private async Task Refresh()
    {
        if (await RecoveryShard().Find(TransferId) is { } listed)
        {
            Adopted(new ListedTransfer(listed, Created: false));
        }
    }

    /// <summary>
    /// Takes the shard's listing as this activation's record. A listing this activation did not
    /// create may have a driver from a previous activation, whose messages may still be on their
    /// way to the accounts: nobody drives until its lease would have ended; see docs/transfers.md.
    /// </summary>
    private void Adopted(ListedTransfer listed)
    {
        if (!listed.Created && _leaseUntil is null && !Completed)
        {
            _leaseUntil = time.GetUtcNow() + _options.LeaseDuration;
        }

        _record = listed.Record;
    }

    /// <summary>
    /// Where the movement stands, with the lease when the caller may drive it: it has a record, has
    /// not ended, and nobody else holds the lease. The lease id goes only to the lease's holder.
    /// </summary>
    private DriveTicket Ticket(bool created = false)
    {
        var lease = _record is null || Completed ? null : TakeLease();
        return new DriveTicket(_record, lease, Conflict: false, Completed, created, lease is null ? Guid.Empty : _leaseId);
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
