using Orleans.Concurrency;
using Orleans.Transactions.Abstractions;

namespace Transactor.Benchmarks;

// The same transfer, written the textbook way with Orleans' own distributed transactions
// (ITransactionalState, TransactionOption.Create/Join): the baseline Transactor is compared with.

[GenerateSerializer]
public sealed class BaselineBalance
{
    [Id(0)] public long AvailableMinor { get; set; }
}

[Alias("Transactor.Benchmarks.IBaselineAccountGrain")]
public interface IBaselineAccountGrain : IGrainWithStringKey
{
    [Transaction(TransactionOption.CreateOrJoin), Alias("Deposit")]
    Task Deposit(long amountMinor);

    [Transaction(TransactionOption.Join), Alias("Withdraw")]
    Task<bool> Withdraw(long amountMinor);

    [Transaction(TransactionOption.CreateOrJoin), Alias("Get")]
    Task<long> GetAvailable();
}

[Alias("Transactor.Benchmarks.IBaselineTransferGrain")]
public interface IBaselineTransferGrain : IGrainWithIntegerKey
{
    [Transaction(TransactionOption.Create), Alias("Transfer")]
    Task<bool> Transfer(string from, string to, long amountMinor);
}

public sealed class BaselineAccountGrain(
    [TransactionalState("balance", "TransactionStore")] ITransactionalState<BaselineBalance> balance) : Grain, IBaselineAccountGrain
{
    public Task Deposit(long amountMinor) => balance.PerformUpdate(b => b.AvailableMinor = checked(b.AvailableMinor + amountMinor));

    public Task<bool> Withdraw(long amountMinor) => balance.PerformUpdate(b =>
    {
        if (b.AvailableMinor < amountMinor)
        {
            return false;
        }

        b.AvailableMinor -= amountMinor;
        return true;
    });

    public Task<long> GetAvailable() => balance.PerformRead(b => b.AvailableMinor);
}

[StatelessWorker, Reentrant]
public sealed class BaselineTransferGrain : Grain, IBaselineTransferGrain
{
    public async Task<bool> Transfer(string from, string to, long amountMinor)
    {
        if (!await GrainFactory.GetGrain<IBaselineAccountGrain>(from).Withdraw(amountMinor))
        {
            return false;
        }

        await GrainFactory.GetGrain<IBaselineAccountGrain>(to).Deposit(amountMinor);
        return true;
    }
}
