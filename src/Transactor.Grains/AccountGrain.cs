using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Storage;
using Transactor.Domain;

namespace Transactor.Grains;

/// <summary>
/// One account. Coordinators call it, in ascending account-id order; it never waits on another
/// grain. Its only call out is one-way: an entry that stays prepared for a whole
/// <see cref="TransferOptions.RecoveryPeriod"/> is handed to a coordinator (<see cref="ITransferCoordinatorGrain.Recover"/>),
/// which finishes the movement or, if it has ended, releases a superseded driver's late prepare.
/// </summary>
public sealed partial class AccountGrain(TimeProvider time, IOptions<TransferOptions> options, ILogger<AccountGrain> logger) : Grain, IAccountGrain
{
    /// <summary>The state name of an account's row.</summary>
    public const string StateName = "account";

    /// <summary>Most entries one check hands to coordinators.</summary>
    public const int MaxRecoveriesPerCheck = 1_000;

    private StoredState<AccountState> _state = null!;
    private AccountBook _book = null!;

    /// <summary>The entries held at the last check, so that the next finds the ones that stayed; null until the first prepare.</summary>
    private HashSet<string>? _heldAtLastCheck;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _state = new StoredState<AccountState>(ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Ledger), StateName, this.GetGrainId(), logger);
        await _state.ReadAsync();
        Load();
    }

    public Task<OpenAccountResult> Open(string currency, string? owner) => OpenWithMetadata(currency, owner, null);

    public async Task<OpenAccountResult> OpenWithMetadata(string currency, string? owner, MetadataMap? metadata)
    {
        if (metadata is { IsValid: false })
        {
            throw new ArgumentException($"Metadata holds 1-{MetadataMap.MaxEntries} keys of the allowed characters with values of at most {MetadataMap.MaxValueLength} characters.", nameof(metadata));
        }

        var result = _book.Open(currency, owner, time.GetUtcNow(), metadata);
        if (result.Status == OpenAccountStatus.Opened)
        {
            await Persist();
            LogOpened(logger, _book.AccountId, currency);
        }

        return result;
    }

    public Task<AccountSnapshot?> GetSnapshot() => Task.FromResult(_book.Snapshot());

    public async Task<PrepareResult> Prepare(PrepareRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Step is HoldStep.Post or HoldStep.Void)
        {
            await ReloadUnlessHoldFound(request);
        }

        // Only a new debit is checked: a driver that takes over a movement prepared here already
        // (recovery, with no caller) must be able to finish it.
        if (request.Side == EntrySide.Debit && _book.IsOpen && !_book.Holds(request.TransferId) && !Caller.MayDebit(_book.State.Owner))
        {
            LogNotOwner(logger, _book.AccountId, Caller.Client!);
            return new PrepareResult(PrepareStatus.Rejected, RejectionReason.NotOwner, _book.State.Currency);
        }

        var result = _book.Prepare(request, out var changed);
        if (changed)
        {
            StartChecks();
            await Persist();
        }

        return result;
    }

    public async Task<AccountSnapshot?> Commit(string transferId, long decidedEpoch)
    {
        await ReloadUnlessHeld(transferId);
        // Read before the commit, which removes the entry: the log names the late prepare's epoch.
        _book.State.Pending.TryGetValue(transferId, out var entry);
        var outcome = _book.Commit(transferId, decidedEpoch);
        if (outcome == CommitOutcome.ReleasedLatePrepare)
        {
            LogReleasedSuperseded(logger, _book.AccountId, transferId, entry!.Epoch, decidedEpoch);
        }

        if (outcome != CommitOutcome.NotHeld)
        {
            await Persist();
        }

        return _book.Snapshot();
    }

    public async Task<AccountSnapshot?> Abort(string transferId, long decidedEpoch)
    {
        await ReloadUnlessHeld(transferId);
        if (_book.Abort(transferId))
        {
            await Persist();
        }

        return _book.Snapshot();
    }

    public Task<DisputeResult> Dispute(string depositId) => Apply(() => _book.DisputeDeposit(depositId));

    public Task<DisputeResult> Resolve(string depositId) => Apply(() => _book.ResolveDeposit(depositId));

    public Task<DisputeResult> Chargeback(string depositId) => Apply(() => _book.ChargebackDeposit(depositId));

    private async Task<DisputeResult> Apply(Func<BatchOutcome> rule)
    {
        if (_book.IsOpen && !Caller.MayDebit(_book.State.Owner))
        {
            LogNotOwner(logger, _book.AccountId, Caller.Client!);
            return new DisputeResult(BatchOutcome.NotOwner, null);
        }

        var outcome = rule();
        if (outcome == BatchOutcome.Applied)
        {
            await Persist();
        }

        return new DisputeResult(outcome, _book.Snapshot());
    }

    /// <summary>
    /// Before this account answers that it holds nothing of a movement, it checks storage: another
    /// activation of it (Orleans' default directory can briefly run two during membership changes)
    /// may have prepared the movement, and an answer from memory would tell the coordinator the
    /// movement was applied here while the stored entry stayed for ever. Every prepare the
    /// coordinator saw answered was stored before its answer, so this read finds it.
    /// </summary>
    private async Task ReloadUnlessHeld(string transferId)
    {
        if (!_book.Holds(transferId) && await _state.ReloadIfChanged())
        {
            LogReloaded(logger, _book.AccountId, transferId);
            Load();
        }
    }

    /// <summary>
    /// Before this account refuses the end of a hold it does not hold (<c>pending_transfer_not_found</c>),
    /// it checks storage, as <see cref="ReloadUnlessHeld"/> does before an apply: another activation
    /// may have applied the hold, and a refusal from this activation's memory would be decided under
    /// the pending transfer's one end id, so no later post, void or expiry could ever end the hold.
    /// The hold's apply was stored before its driver heard it, and an end begins only once the hold
    /// has completed, so this read finds it.
    /// </summary>
    private async Task ReloadUnlessHoldFound(PrepareRequest request)
    {
        if (!_book.Holds(request.TransferId) && (request.PendingTransferId is not { } pendingId || _book.HoldOf(pendingId) is null) && await _state.ReloadIfChanged())
        {
            LogReloaded(logger, _book.AccountId, request.TransferId);
            Load();
        }
    }

    /// <summary>Takes the state read from storage; entries it holds are looked at like any prepared here.</summary>
    private void Load()
    {
        _book = new AccountBook(LedgerGrains.AccountIdOf(this.GetPrimaryKeyString()), _state.State);
        // Check what was loaded, not only what is written: a bad row must stop here, not spread.
        _book.AssertInvariants();
        if (_book.State.Pending.Count > 0)
        {
            StartChecks();
        }
    }

    /// <summary>Starts the check for entries that stay prepared, once per activation.</summary>
    private void StartChecks()
    {
        if (_heldAtLastCheck is null)
        {
            _heldAtLastCheck = new HashSet<string>(StringComparer.Ordinal);
            var period = options.Value.RecoveryPeriod;
            this.RegisterGrainTimer(CheckHeldEntries, period, period);
        }
    }

    /// <summary>
    /// Hands every entry held since the last check to a coordinator. A live movement's shard sweeps
    /// it anyway (and a claim while its driver works is refused), so this matters only for an
    /// entry no shard lists: a prepare that reached this account after its movement had ended here.
    /// Time only decides when to look; what is released is decided by the movement's record.
    /// </summary>
    private Task CheckHeldEntries(CancellationToken cancellation)
    {
        var previous = _heldAtLastCheck!;
        var coordinator = GrainFactory.GetCoordinator();
        var handed = 0;
        foreach (var (transferId, entry) in _book.State.Pending)
        {
            if (!previous.Contains(transferId) || handed == MaxRecoveriesPerCheck)
            {
                continue;
            }

            if (entry.Epoch == 0)
            {
                // An earlier version's entry: its listed movement's shard drives it (and moves the
                // entry to an epoch); one that ended cannot be told from a commit never applied, so
                // it is left for an operator (docs/transfers.md, "Upgrades").
                LogEarlierVersionEntry(logger, _book.AccountId, transferId);
            }

            handed++;
            coordinator.Recover(transferId).Ignore();
        }

        previous.Clear();
        previous.UnionWith(_book.State.Pending.Keys);
        return Task.CompletedTask;
    }

    private Task Persist() => _state.WriteOrDeactivate(this);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Account {AccountId}: refused a debit or dispute step asked for client key {KeyId}, which does not own the account")]
    private static partial void LogNotOwner(ILogger logger, string accountId, string keyId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Opened account {AccountId} in {Currency}")]
    private static partial void LogOpened(ILogger logger, string accountId, string currency);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Account {AccountId}: storage held a newer row than this activation when transfer {TransferId} was applied or ended a hold; took it")]
    private static partial void LogReloaded(ILogger logger, string accountId, string transferId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Account {AccountId}: released transfer {TransferId}'s entry of epoch {Epoch}, a late prepare of a driver superseded before epoch {DecidedEpoch} decided it")]
    private static partial void LogReleasedSuperseded(ILogger logger, string accountId, string transferId, long epoch, long decidedEpoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Account {AccountId}: transfer {TransferId} has stayed prepared here since an earlier version; recovery finishes it if it is listed, else it needs an operator")]
    private static partial void LogEarlierVersionEntry(ILogger logger, string accountId, string transferId);
}
