namespace Transactor.Domain;

/// <summary>
/// Disputes of deposits made through the service. A committed deposit is remembered in the same
/// <see cref="DepositHistory"/> the batch rules use, under a per-account number, so dispute, resolve
/// and chargeback run the very same rules as the batch engine.
/// </summary>
public sealed partial class AccountBook
{
    /// <summary>Disputes the deposit recorded under transfer id <paramref name="depositId"/>.</summary>
    public BatchOutcome DisputeDeposit(string depositId) => WithDeposit(depositId, Dispute);

    /// <summary>Resolves the dispute of the deposit <paramref name="depositId"/>.</summary>
    public BatchOutcome ResolveDeposit(string depositId) => WithDeposit(depositId, Resolve);

    /// <summary>Charges back the disputed deposit <paramref name="depositId"/>, locking the account.</summary>
    public BatchOutcome ChargebackDeposit(string depositId) => WithDeposit(depositId, Chargeback);

    private BatchOutcome WithDeposit(string depositId, Func<uint, BatchOutcome> rule)
    {
        if (!IsOpen)
        {
            return BatchOutcome.AccountNotFound;
        }

        if (State.DepositNumbers is null || !State.DepositNumbers.TryGetValue(depositId, out var number))
        {
            return BatchOutcome.UnknownTx;
        }

        var outcome = rule(number);
        if (outcome == BatchOutcome.Applied)
        {
            State.Version++;
            AssertInvariants();
        }

        return outcome;
    }

    private void RememberDeposit(string transferId, long amountMinor)
    {
        var number = ++State.LastDepositNumber;
        (State.Deposits ??= new DepositHistory()).TryAdd(number, amountMinor);
        (State.DepositNumbers ??= new Dictionary<string, uint>(StringComparer.Ordinal))[transferId] = number;
    }
}
