using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Storage;
using Transactor.Domain;

namespace Transactor.Grains;

/// <summary>One account. Calls no other grain: coordinators call it, in ascending account-id order.</summary>
public sealed partial class AccountGrain(TimeProvider time, ILogger<AccountGrain> logger) : Grain, IAccountGrain
{
    /// <summary>The state name of an account's row.</summary>
    public const string StateName = "account";

    private StoredState<AccountState> _state = null!;
    private AccountBook _book = null!;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _state = new StoredState<AccountState>(ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Ledger), StateName, this.GetGrainId(), logger);
        await _state.ReadAsync();
        _book = new AccountBook(LedgerGrains.AccountIdOf(this.GetPrimaryKeyString()), _state.State);
        // Check what was loaded, not only what is written: a bad row must stop here, not spread.
        _book.AssertInvariants();
    }

    public async Task<OpenAccountResult> Open(string currency, string? owner)
    {
        var result = _book.Open(currency, owner, time.GetUtcNow());
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
        var result = _book.Prepare(request, time.GetUtcNow(), out var changed);
        if (changed)
        {
            await Persist();
        }

        return result;
    }

    public async Task<AccountSnapshot?> Commit(string transferId)
    {
        if (_book.Commit(transferId))
        {
            await Persist();
        }

        return _book.Snapshot();
    }

    public async Task<AccountSnapshot?> Abort(string transferId)
    {
        if (_book.Abort(transferId))
        {
            await Persist();
        }

        return _book.Snapshot();
    }

    public Task<DisputeResult> Dispute(string depositId) => Apply(_book.DisputeDeposit(depositId));

    public Task<DisputeResult> Resolve(string depositId) => Apply(_book.ResolveDeposit(depositId));

    public Task<DisputeResult> Chargeback(string depositId) => Apply(_book.ChargebackDeposit(depositId));

    private async Task<DisputeResult> Apply(BatchOutcome outcome)
    {
        if (outcome == BatchOutcome.Applied)
        {
            await Persist();
        }

        return new DisputeResult(outcome, _book.Snapshot());
    }

    private Task Persist() => _state.WriteOrDeactivate(this);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Opened account {AccountId} in {Currency}")]
    private static partial void LogOpened(ILogger logger, string accountId, string currency);
}
