using Orleans.Runtime;

namespace Transactor.Tests.Cluster;

[Collection(ClusterTestGroup.Name)]
public sealed class ConcurrencyTests(ClusterFixture fixture)
{
    private readonly Ledger _ledger = new(fixture.Client);

    [Theory]
    [InlineData(4, 3_000, 1)]
    [InlineData(500, 3_000, 2)]
    public async Task Concurrent_transfers_in_both_directions_conserve_money_and_never_overdraw(int accountCount, int transferCount, int seed)
    {
        const long initialMinor = 1_000;
        var ids = await _ledger.OpenFunded(Ledger.NewId($"conc{seed}"), accountCount, initialMinor);
        var random = new Random(seed);
        // Amounts up to the whole initial balance make insufficient funds common on hot accounts.
        var requests = Enumerable.Range(0, transferCount).Select(_ =>
        {
            var from = random.Next(accountCount);
            var to = (from + 1 + random.Next(accountCount - 1)) % accountCount;
            return new TransferRequest(Ledger.NewId("t"), ids[from], ids[to], random.NextInt64(1, initialMinor + 1), "USD");
        }).ToArray();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var answered = await Task.WhenAll(requests.Select(r => _ledger.Execute(r))).WaitAsync(timeout.Token);

        // Under heavy load a coordinator may run out of lease and answer "pending"; recovery then
        // finishes the transfer, and its record has the final outcome.
        var results = await Task.WhenAll(answered.Select(r => r.Status == TransferStatus.Pending ? _ledger.WaitForRecordedEnd(r.TransferId, TimeSpan.FromSeconds(60)) : Task.FromResult(r)));

        Assert.All(results, r => Assert.True(
            r.Status == TransferStatus.Committed || r.Reason == RejectionReason.InsufficientFunds,
            $"{r.TransferId}: {r.Status} {r.Reason}"));
        Assert.Contains(results, r => r.Status == TransferStatus.Committed);
        await _ledger.AssertBalanced(ids, accountCount * initialMinor);

        // The books agree with the outcomes: each account's balance is its start plus what the
        // committed transfers moved in, minus what they moved out.
        var expected = ids.ToDictionary(id => id, _ => initialMinor);
        foreach (var r in results.Where(r => r.Status == TransferStatus.Committed))
        {
            expected[r.Request.DebitAccountId!] -= r.Request.AmountMinor;
            expected[r.Request.CreditAccountId!] += r.Request.AmountMinor;
        }

        var snapshots = await _ledger.Snapshots(ids);
        Assert.All(snapshots, s => Assert.Equal(expected[s.AccountId], s.AvailableMinor));
    }

    [Fact]
    public async Task Accounts_are_spread_over_several_silos()
    {
        var ids = await _ledger.OpenFunded(Ledger.NewId("spread"), 300, 10);

        var management = fixture.Client.GetGrain<IManagementGrain>(0);
        var stats = await management.GetDetailedGrainStatistics();
        var wanted = ids.ToHashSet(StringComparer.Ordinal);
        var silos = stats.Where(s => s.GrainId.Key.ToString()!.StartsWith("acct/", StringComparison.Ordinal) && wanted.Contains(LedgerGrains.AccountIdOf(s.GrainId.Key.ToString()!)))
            .Select(s => s.SiloAddress).Distinct().Count();

        // Orleans places activations by silo load, so not every silo need get some; but the
        // accounts of one workload must not all sit on one silo, or the cluster tests prove little.
        Assert.True(silos >= 2, $"300 accounts activated on {silos} of {ClusterFixture.SiloCount} silos");
    }
}
