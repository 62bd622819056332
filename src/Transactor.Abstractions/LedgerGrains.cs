using Orleans.Runtime;

namespace Transactor;

/// <summary>
/// How account and transfer ids become grain keys, and the references to the ledger's grains.
/// Every key gets a prefix that is not a hex digit: Orleans' ADO.NET storage reads a string key
/// that parses as hex (such as "cafe" or "0CAFE") as a number, so "cafe" and "0cafe" would share
/// one row. The prefix keeps every id its own row.
/// </summary>
/// <remarks>
/// <c>IGrainFactory.GetGrain&lt;T&gt;(key)</c> works out the grain type of <c>T</c> again on every
/// call, reading <c>T</c>'s attributes and formatting its name: a few kilobytes of garbage per
/// reference, several references per transfer. These methods work it out once per interface and
/// then build references from the grain id, through <c>GetGrain(GrainId, GrainInterfaceType)</c>.
/// </remarks>
public static class LedgerGrains
{
    private const string AccountPrefix = "acct/";
    private const string TransferPrefix = "xfer/";
    private static readonly GrainType TransferRowType = GrainType.Create("transfer");
    private static readonly GrainType HistoryPageRowType = GrainType.Create("acctpage");

    /// <summary>The grain of account <paramref name="accountId"/>.</summary>
    public static IAccountGrain GetAccount(this IGrainFactory grains, string accountId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return Reference<IAccountGrain>(grains, IdSpan.Create(AccountPrefix + accountId));
    }

    /// <summary>
    /// The grain id under which the ended record of transfer <paramref name="transferId"/> is
    /// stored. Its grain type is that of the record grain earlier versions kept per transfer, so
    /// their rows and ours are one: never change it without a migration.
    /// </summary>
    public static GrainId TransferRowId(string transferId)
    {
        ArgumentNullException.ThrowIfNull(transferId);
        return GrainId.Create(TransferRowType, IdSpan.Create(TransferPrefix + transferId));
    }

    /// <summary>
    /// The grain id under which page <paramref name="page"/> of account <paramref name="accountId"/>'s
    /// history is stored (state name <c>history</c>). A plain row, not a grain: no grain of its type exists.
    /// </summary>
    public static GrainId HistoryPageRowId(string accountId, int page)
    {
        ArgumentNullException.ThrowIfNull(accountId);
        ArgumentOutOfRangeException.ThrowIfNegative(page);
        // '/' never occurs in an account id, so the page number cannot run into the id.
        return GrainId.Create(HistoryPageRowType, IdSpan.Create(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{AccountPrefix}{accountId}/{page}")));
    }

    /// <summary>The reader of accounts' histories (a stateless worker: every silo runs its own).</summary>
    public static IAccountHistoryGrain GetAccountHistory(this IGrainFactory grains)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return Reference<IAccountHistoryGrain>(grains, GrainIdKeyExtensions.CreateIntegerKey(0));
    }

    /// <summary>
    /// The result recorded under transfer (idempotency key) <paramref name="transferId"/>: pending or
    /// decided while in flight, final once ended; null when the id is unknown.
    /// </summary>
    public static Task<TransferResult?> GetTransferResult(this IGrainFactory grains, string transferId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return grains.GetRecoveryShard(transferId).GetResult(transferId);
    }

    /// <summary>The recovery shard that lists transfer <paramref name="transferId"/> while it is in flight.</summary>
    public static IRecoveryShardGrain GetRecoveryShard(this IGrainFactory grains, string transferId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return Reference<IRecoveryShardGrain>(grains, GrainIdKeyExtensions.CreateIntegerKey(RecoveryShards.Of(transferId)));
    }

    /// <summary>The account directory's grain under <paramref name="key"/> (see <see cref="AccountDirectory"/>).</summary>
    public static IAccountDirectoryGrain GetAccountDirectory(this IGrainFactory grains, long key)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return Reference<IAccountDirectoryGrain>(grains, GrainIdKeyExtensions.CreateIntegerKey(key));
    }

    /// <summary>The transfer coordinator (a stateless worker: every silo runs its own).</summary>
    public static ITransferCoordinatorGrain GetCoordinator(this IGrainFactory grains)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return Reference<ITransferCoordinatorGrain>(grains, GrainIdKeyExtensions.CreateIntegerKey(0));
    }

    /// <summary>The account id in an account grain's key.</summary>
    public static string AccountIdOf(string grainKey) => Strip(grainKey, AccountPrefix);

    private static TGrain Reference<TGrain>(IGrainFactory grains, IdSpan key)
        where TGrain : IAddressable
    {
        if (GrainTypes<TGrain>.Resolved is { } types)
        {
            return (TGrain)grains.GetGrain(GrainId.Create(types.GrainType, key), types.InterfaceType);
        }

        var reference = (GrainReference)grains.GetGrain(typeof(TGrain), key);
        GrainTypes<TGrain>.Resolved = new ResolvedTypes(reference.GrainId.Type, reference.InterfaceType);
        return (TGrain)(object)reference;
    }

    private static class GrainTypes<TGrain>
    {
        /// <summary>Set once, by the first reference; the same for every grain factory of this process.</summary>
        public static volatile ResolvedTypes? Resolved;
    }

    private sealed record ResolvedTypes(GrainType GrainType, GrainInterfaceType InterfaceType);

    private static string Strip(string grainKey, string prefix)
    {
        ArgumentNullException.ThrowIfNull(grainKey);
        return grainKey.StartsWith(prefix, StringComparison.Ordinal)
            ? grainKey[prefix.Length..]
            : throw new ArgumentException($"Grain key '{grainKey}' does not start with '{prefix}'.", nameof(grainKey));
    }
}
