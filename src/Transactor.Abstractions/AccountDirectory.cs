namespace Transactor;

/// <summary>
/// The directory of open accounts, spread over <see cref="Shards"/> grains so that opening an
/// account writes one shard's list, not a list of every account. Shard grains have keys
/// 1..<see cref="Shards"/>; key 0 is the single list that versions before the shards kept, still
/// read (never added to) so that accounts listed there stay listed.
/// </summary>
public static class AccountDirectory
{
    /// <summary>The number of shards. Persisted data depends on it: change it only with a migration.</summary>
    public const int Shards = 64;

    /// <summary>The key of the single list that earlier versions kept.</summary>
    public const long EarlierListKey = 0;

    /// <summary>The key of the shard that lists <paramref name="accountId"/>.</summary>
    public static long ShardOf(string accountId) => 1 + (StableHash.Fnv1a(accountId) % Shards);

    /// <summary>Lists an opened account; returns once the listing is durable. Idempotent.</summary>
    public static Task Add(IGrainFactory grains, string accountId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentNullException.ThrowIfNull(accountId);
        return grains.GetAccountDirectory(ShardOf(accountId)).Add(accountId);
    }

    /// <summary>
    /// Up to <paramref name="limit"/> ids greater than <paramref name="after"/> (all when null), in
    /// ordinal order: every shard's page, merged. <see cref="AccountPage.Total"/> counts an account
    /// twice if it is in the earlier list and was opened again since.
    /// </summary>
    public static async Task<AccountPage> Page(IGrainFactory grains, string? after, int limit)
    {
        ArgumentNullException.ThrowIfNull(grains);
        var pages = await Task.WhenAll(Enumerable.Range(0, Shards + 1)
            .Select(key => grains.GetAccountDirectory(key).Page(after, limit)));
        var merged = pages.SelectMany(p => p.AccountIds).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var more = merged.Count > limit || pages.Any(p => p.Next is not null);
        var ids = merged.Count > limit ? merged.GetRange(0, limit) : merged;
        return new AccountPage(ids, more && ids.Count > 0 ? ids[^1] : null, pages.Sum(p => p.Total));
    }
}
