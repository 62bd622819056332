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
public sealed partial class AccountGrain(TimeProvider time, HistoryCodec historyCodec, IOptions<TransferOptions> options, ILogger<AccountGrain> logger) : Grain, IAccountGrain
{
    /// <summary>The state name of an account's row.</summary>
    public const string StateName = "account";

    /// <summary>Most entries one check hands to coordinators.</summary>
    public const int MaxRecoveriesPerCheck = 1_000;

    /// <summary>
    /// Full history pages an account's row may carry before a prepare waits for one to move out:
    /// a page moves in the background once it is full, so only failing page writes reach this.
    /// </summary>
    public const int MaxHistoryPagesInRow = 4;

    private IGrainStorage _storage = null!;
    private StoredState<AccountState> _state = null!;
    private AccountBook _book = null!;

    /// <summary>The entries held at the last check, so that the next finds the ones that stayed; null until the first prepare.</summary>
    private HashSet<string>? _heldAtLastCheck;

    /// <summary>Moves full history pages out of the row, off the path of the call that filled them; null until the first page.</summary>
    private IGrainTimer? _pageMover;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _storage = ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Ledger);
        _state = new StoredState<AccountState>(_storage, StateName, this.GetGrainId(), logger);
        await _state.ReadAsync();
        Load();
    }

    public Task<OpenAccountResult> Open(string currency, string? owner) => Open(currency, owner, AccountLimits.Default);

    public Task<OpenAccountResult> Open(string currency, string? owner, AccountLimits limits) => OpenWithMetadata(currency, owner, limits, null);

    public async Task<OpenAccountResult> OpenWithMetadata(string currency, string? owner, AccountLimits limits, MetadataMap? metadata)
    {
        if (metadata is { IsValid: false })
        {
            throw new ArgumentException($"Metadata holds 1-{MetadataMap.MaxEntries} keys of the allowed characters with values of at most {MetadataMap.MaxValueLength} characters.", nameof(metadata));
        }

        var result = _book.Open(currency, owner, time.GetUtcNow(), limits, metadata);
        if (result.Status == OpenAccountStatus.Opened)
        {
            await Persist();
            LogOpened(logger, _book.AccountId, currency);
        }

        return result;
    }

    public Task<AccountSnapshot?> GetSnapshot() => Task.FromResult(_book.Snapshot());

    public async Task<SetLimitsResult> SetLimits(AccountLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var version = _book.State.Version;
        var status = _book.SetLimits(limits);
        if (_book.State.Version != version)
        {
            await Persist();
            LogLimitsChanged(logger, _book.AccountId, limits.AllowOverdraft, limits.CreditLimitMinor);
        }

        return new SetLimitsResult(status, _book.Snapshot());
    }

    public Task<HistoryHead?> GetHistoryHead()
    {
        if (_book.Snapshot() is not { } account)
        {
            return Task.FromResult<HistoryHead?>(null);
        }

        var s = _book.State;
        // Decoded, so a copy: the tail changes with the next apply, and the answer may be read after it.
        var tail = _book.HistoryTail(historyCodec);
        return Task.FromResult<HistoryHead?>(new HistoryHead(account, s.HistoryCount, s.HistoryPages, s.HistoryPageSize, tail, s.HistoryStart));
    }

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

        if (_book.HistoryTailCount >= MaxHistoryPagesInRow * Math.Max(1, _book.State.HistoryPageSize))
        {
            // Page writes in the background have failed: move them now, or refuse (the caller retries) rather than grow the row.
            await MoveHistoryPages();
        }

        var result = _book.Prepare(request, out var changed);
        if (changed)
        {
            StartChecks();
            await Persist();
        }

        return result;
    }

    public Task<AccountSnapshot?> Commit(string transferId, long decidedEpoch) => CommitWithMetadata(transferId, decidedEpoch, null);

    public async Task<AccountSnapshot?> CommitWithMetadata(string transferId, long decidedEpoch, MetadataMap? metadata)
    {
        if (metadata is { IsValid: false })
        {
            throw new ArgumentException($"Metadata holds 1-{MetadataMap.MaxEntries} keys of the allowed characters with values of at most {MetadataMap.MaxValueLength} characters.", nameof(metadata));
        }

        await ReloadUnlessHeld(transferId);
        // Read before the commit, which removes the entry: the log names the late prepare's epoch.
        _book.State.Pending.TryGetValue(transferId, out var entry);
        var outcome = _book.Commit(transferId, decidedEpoch, metadata);
        if (outcome == CommitOutcome.ReleasedLatePrepare)
        {
            LogReleasedSuperseded(logger, _book.AccountId, transferId, entry!.Epoch, decidedEpoch);
        }

        if (outcome != CommitOutcome.NotHeld)
        {
            await Persist();
            MoveHistoryPagesSoon();
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
            MoveHistoryPagesSoon();
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
        if (options.Value.RecordHistory)
        {
            _book.EnableHistory(time, historyCodec, options.Value.HistoryPageSize);
        }

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

    /// <summary>
    /// When a full page of history is due, moves it on a timer of its own (which runs as its own
    /// turn, interleaving with no call): the call that filled the page answers without waiting for
    /// the page's write. On PostgreSQL that write joins the batched provider's next flush.
    /// </summary>
    private void MoveHistoryPagesSoon()
    {
        if (!_book.HistoryPageIsDue)
        {
            return;
        }

        if (_pageMover is null)
        {
            _pageMover = this.RegisterGrainTimer(MoveHistoryPagesOnTimer, TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _pageMover.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }
    }

    private async Task MoveHistoryPagesOnTimer(CancellationToken cancellation)
    {
        try
        {
            await MoveHistoryPages();
        }
        catch (Exception ex)
        {
            // The entries stay in the row; the next apply tries again, and a prepare insists (MaxHistoryPagesInRow).
            LogHistoryPageFailed(logger, ex, _book.AccountId);
        }
    }

    /// <summary>
    /// Writes each full page of the tail into its own row, then takes it out of the tail; the
    /// account's next write stores that. Only entries already stored in the account's row are ever
    /// in a page, and history only grows at its end, so every activation that writes page k writes
    /// the same entries: a page row found there already is this page, stored by an earlier activation
    /// whose account write after it did not happen.
    /// </summary>
    private async Task MoveHistoryPages()
    {
        var rowsWritten = 0;
        while (rowsWritten < MaxHistoryPagesInRow + 1 && _book.DueHistoryPage() is { } due)
        {
            var rowId = LedgerGrains.HistoryPageRowId(_book.AccountId, due.Page);
            var row = new GrainState<HistoryPage>(new HistoryPage { Encoded = due.Entries });
            try
            {
                await _storage.WriteStateAsync(HistoryPage.StateName, rowId, row);
            }
            catch (InconsistentStateException)
            {
                var stored = new GrainState<HistoryPage>(new HistoryPage());
                await _storage.ReadStateAsync(HistoryPage.StateName, rowId, stored);
                var entries = stored.State is { } page ? historyCodec.Entries(page) : [];
                var written = historyCodec.Decode(due.Entries);
                if (!entries.SequenceEqual(written))
                {
                    throw new LedgerInvariantException(
                        $"Account '{_book.AccountId}': history page {due.Page} is stored with entries {entries.FirstOrDefault()?.Sequence}-{entries.LastOrDefault()?.Sequence}, not those of the account's row.");
                }
            }

            // The storage write above was a turn boundary: another change may have moved this page already.
            if (_book.HistoryPageIsDue && _book.State.HistoryPages == due.Page)
            {
                _book.HistoryPageStored(due.Page);
            }

            rowsWritten++;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Account {AccountId}: moving a full page of history to its own row failed; the entries stay in the account's row and the move is tried again")]
    private static partial void LogHistoryPageFailed(ILogger logger, Exception exception, string accountId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Account {AccountId}: limits changed to overdraft {AllowOverdraft}, credit limit {CreditLimitMinor}")]
    private static partial void LogLimitsChanged(ILogger logger, string accountId, bool allowOverdraft, long creditLimitMinor);

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
