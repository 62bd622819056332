namespace Transactor.Tests.Cluster;

[Collection(ClusterTestGroup.Name)]
public sealed class AccountDirectoryTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Ids_spread_over_shards_page_back_in_order_each_once()
    {
        var client = fixture.Client;
        var prefix = Ledger.NewId("dir") + "-";
        var ids = Enumerable.Range(0, 300).Select(i => $"{prefix}{i:D4}").ToArray();
        await Task.WhenAll(ids.Reverse().Select(id => AccountDirectory.Add(client, id)));
        await AccountDirectory.Add(client, ids[5]);

        // Accounts an earlier version listed in its single list, one of them opened again since.
        var earlier = client.GetGrain<IAccountDirectoryGrain>(AccountDirectory.EarlierListKey);
        var legacy = new[] { $"{prefix}legacy-a", $"{prefix}legacy-b", ids[7] };
        foreach (var id in legacy)
        {
            await earlier.Add(id);
        }

        var listed = new List<string>();
        string? after = prefix;
        AccountPage page;
        do
        {
            page = await AccountDirectory.Page(client, after, 7);
            listed.AddRange(page.AccountIds.Where(id => id.StartsWith(prefix, StringComparison.Ordinal)));
            after = page.Next;
        }
        while (after is not null && after.StartsWith(prefix, StringComparison.Ordinal));

        string[] expected = [.. ids.Concat(legacy).Distinct().Order(StringComparer.Ordinal)];
        Assert.Equal(expected, listed);
        Assert.True(page.Total >= expected.Length);
        Assert.True(ids.Select(AccountDirectory.ShardOf).Distinct().Count() > AccountDirectory.Shards / 2);
    }

    [Fact]
    public async Task A_page_says_there_is_no_next_page_only_at_the_end()
    {
        var client = fixture.Client;
        await AccountDirectory.Add(client, Ledger.NewId("dir-a"));
        await AccountDirectory.Add(client, Ledger.NewId("dir-b"));

        var first = await AccountDirectory.Page(client, after: null, 1);
        Assert.Single(first.AccountIds);
        Assert.Equal(first.AccountIds[0], first.Next);

        var last = await AccountDirectory.Page(client, "\u007f", 5);
        Assert.Empty(last.AccountIds);
        Assert.Null(last.Next);
    }
}
