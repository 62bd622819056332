namespace Transactor.Domain;

/// <summary>
/// Disputes of deposits made through the service. A committed deposit is remembered in the same
/// <see cref="DepositHistory"/> the batch rules use, under a per-account number, so dispute, resolve
/// and chargeback run the very same rules as the batch engine.
/// </summary>
public sealed partial class AccountBook
{
    /// <summary>
    /// How many of an account's most recent deposits can be disputed. The account's row holds them,
    /// and it is rewritten on every change of the account, so the number is bounded.
    /// </summary>
    public const int DisputableDeposits = 1_000;

    /// <summary>Disputes the deposit recorded under transfer id <paramref name="depositId"/>.</summary>
    public BatchOutcome DisputeDeposit(string depositId) => WithDeposit(depositId, Dispute, HistoryKind.Dispute);

    /// <summary>Resolves the dispute of the deposit <paramref name="depositId"/>.</summary>
    public BatchOutcome ResolveDeposit(string depositId) => WithDeposit(depositId, Resolve, HistoryKind.Resolve);

    /// <summary>Charges back the disputed deposit <paramref name="depositId"/>, locking the account.</summary>
    public BatchOutcome ChargebackDeposit(string depositId) => WithDeposit(depositId, Chargeback, HistoryKind.Chargeback);

    private BatchOutcome WithDeposit(string depositId, Func<uint, BatchOutcome> rule, HistoryKind kind)
    {
        if (!IsOpen)
        {
            return BatchOutcome.AccountNotFound;
        }

        if (State.DepositNumbers is null || !State.DepositNumbers.TryGetValue(depositId, out var number))
        {
            return BatchOutcome.UnknownTx;
        }

        // The rule bumps the version when it applies.
        var outcome = rule(number);
        if (outcome == BatchOutcome.Applied)
        {
            State.Deposits!.TryGet(number, out var deposit);
            Record(kind, depositId, deposit.AmountMinor, null, null);
            AssertInvariants();
        }

        return outcome;
    }

    /// <summary>
    /// Remembers a deposit so it can be disputed, keeping the account's row bounded: at most
    /// <see cref="DisputableDeposits"/> deposits are remembered. The oldest deposit not under dispute
    /// is forgotten to make room; a deposit under dispute is kept until its dispute ends (its amount
    /// is held). When every remembered deposit is under dispute, the new one is not remembered.
    /// </summary>
    private void RememberDeposit(string transferId, long amountMinor)
    {
        var number = ++State.LastDepositNumber;
        var numbers = State.DepositNumbers ??= new Dictionary<string, uint>(StringComparer.Ordinal);
        var deposits = State.Deposits ??= new DepositHistory();
        if (numbers.Count >= DisputableDeposits)
        {
            ForgetOldestSettled(numbers, deposits, numbers.Count - DisputableDeposits + 1);
            if (numbers.Count >= DisputableDeposits)
            {
                return;
            }
        }

        deposits.TryAdd(number, amountMinor);
        numbers[transferId] = number;
    }

    private static void ForgetOldestSettled(Dictionary<string, uint> numbers, DepositHistory deposits, int count)
    {
        // Settled (or charged back) deposits, oldest first. One to forget, as on every deposit of a
        // full account, takes one pass; more (a row that an earlier version let grow) take a sort.
        var candidates = new List<KeyValuePair<string, uint>>();
        foreach (var pair in numbers)
        {
            if (!deposits.TryGet(pair.Value, out var deposit) || deposit.Status != DepositStatus.Disputed)
            {
                candidates.Add(pair);
            }
        }

        if (count == 1 && candidates.Count > 0)
        {
            Forget(candidates.MinBy(static c => c.Value));
            return;
        }

        candidates.Sort(static (a, b) => a.Value.CompareTo(b.Value));
        foreach (var candidate in candidates.Take(count))
        {
            Forget(candidate);
        }

        void Forget(KeyValuePair<string, uint> pair)
        {
            numbers.Remove(pair.Key);
            deposits.Remove(pair.Value);
        }
    }
}
