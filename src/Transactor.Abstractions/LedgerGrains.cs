namespace Transactor;

/// <summary>
/// How account and transfer ids become grain keys. Every key gets a prefix that is not a hex digit:
/// Orleans' ADO.NET storage reads a string key that parses as hex (such as "cafe" or "0CAFE") as a
/// number, so "cafe" and "0cafe" would share one row. The prefix keeps every id its own row.
/// </summary>
public static class LedgerGrains
{
    private const string AccountPrefix = "acct/";
    private const string TransferPrefix = "xfer/";

    /// <summary>The grain of account <paramref name="accountId"/>.</summary>
    public static IAccountGrain GetAccount(this IGrainFactory grains, string accountId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return grains.GetGrain<IAccountGrain>(AccountPrefix + accountId);
    }

    /// <summary>The record grain of transfer (idempotency key) <paramref name="transferId"/>.</summary>
    public static ITransferGrain GetTransfer(this IGrainFactory grains, string transferId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return grains.GetGrain<ITransferGrain>(TransferPrefix + transferId);
    }

    /// <summary>The recovery shard that lists transfer <paramref name="transferId"/> while it is in flight.</summary>
    public static IRecoveryShardGrain GetRecoveryShard(this IGrainFactory grains, string transferId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return grains.GetGrain<IRecoveryShardGrain>(RecoveryShards.Of(transferId));
    }

    /// <summary>The account id in an account grain's key.</summary>
    public static string AccountIdOf(string grainKey) => Strip(grainKey, AccountPrefix);

    /// <summary>The transfer id in a transfer grain's key.</summary>
    public static string TransferIdOf(string grainKey) => Strip(grainKey, TransferPrefix);

    private static string Strip(string grainKey, string prefix)
    {
        ArgumentNullException.ThrowIfNull(grainKey);
        return grainKey.StartsWith(prefix, StringComparison.Ordinal)
            ? grainKey[prefix.Length..]
            : throw new ArgumentException($"Grain key '{grainKey}' does not start with '{prefix}'.", nameof(grainKey));
    }
}
