namespace Transactor.Grains;

/// <summary>Names of the grain storage providers Transactor uses.</summary>
public static class StorageNames
{
    /// <summary>Accounts and transfer records.</summary>
    public const string Ledger = "ledger";
}
