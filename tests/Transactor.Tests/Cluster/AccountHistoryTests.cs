using Transactor.Domain;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>Account history on the cluster: rows of earlier versions, and an account that is its own counterparty's history.</summary>
[Collection(ClusterTestGroup.Name)]
public sealed class AccountHistoryTests(ClusterFixture fixture)
{
    [Fact]
    public async Task An_account_stored_by_a_version_without_history_starts_it_when_loaded_with_its_balances_then()
    {
        var id = Ledger.NewId("old");
        var openedAt = DateTimeOffset.UtcNow.AddDays(-1);
        // The row as a version without history (or limits) left it: opened a day ago, 700 available.
        fixture.StoreRow(AccountGrain.StateName, fixture.Client.GetAccount(id).GetGrainId(),
            new AccountState { Currency = "USD", OpenedAt = openedAt, AvailableMinor = 700, Version = 3 });
        var loadedAfter = DateTimeOffset.UtcNow;

        var ledger = new Ledger(fixture.Client);
        Assert.Equal(TransferStatus.Committed, (await ledger.Execute(TransferRequest.Withdrawal(Ledger.NewId("w"), id, 200))).Status);

        var history = fixture.Client.GetAccountHistory();
        var entries = (await history.Entries(id, 0, 10))!;
        Assert.Equal((1L, HistoryKind.Withdrawal, 200L, 500L), (entries.Count, entries.Entries[0].Kind, entries.Entries[0].AmountMinor, entries.Entries[0].AvailableMinor));
        Assert.Equal(BalanceAtStatus.BeforeHistory, (await history.BalanceAt(id, openedAt.AddHours(1)))!.Status);
        Assert.Equal(BalanceAtStatus.BeforeOpening, (await history.BalanceAt(id, openedAt.AddHours(-1)))!.Status);
        var start = (await history.BalanceAt(id, entries.Entries[0].At.AddTicks(-1)))!;
        Assert.True(start.Status == BalanceAtStatus.Known && start.Sequence == 0 && start.AvailableMinor == 700, $"before its first entry: {start}");
        Assert.True(entries.Entries[0].At >= loadedAfter);
        Assert.False((await fixture.Client.GetAccount(id).GetSnapshot())!.AllowOverdraft);
    }

    [Fact]
    public async Task An_overdrawn_account_keeps_the_books_balanced_with_its_negative_total()
    {
        var ledger = new Ledger(fixture.Client);
        var id = Ledger.NewId("od");
        var other = (await ledger.OpenFunded(Ledger.NewId("od"), 1, 100))[0];
        Assert.Equal(OpenAccountStatus.Opened, (await fixture.Client.GetAccount(id).Open("USD", null, new AccountLimits(true, 1_000))).Status);

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            ledger.Execute(new TransferRequest(Ledger.NewId("od-t"), id, other, 75, "USD"))));

        // 13 × 75 = 975 fits in the limit of 1,000, a 14th would not: whatever the order, 13 commit.
        Assert.Equal(13, concurrent.Count(r => r.Status == TransferStatus.Committed));
        Assert.All(concurrent.Where(r => r.Status == TransferStatus.Rejected), r => Assert.Equal(RejectionReason.InsufficientFunds, r.Reason));
        var snapshot = (await ledger.Snapshots([id]))[0];
        Assert.Equal((-975L, -1_000L), (snapshot.AvailableMinor, snapshot.FloorMinor));
        await ledger.AssertBalanced([id, other], 100);
        Assert.Equal(-975L, (await fixture.Client.GetAccountHistory().Entries(id, 0, 100))!.Entries[^1].AvailableMinor);
    }
}
