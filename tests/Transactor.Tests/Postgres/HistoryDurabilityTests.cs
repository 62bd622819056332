using Transactor.Domain;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Postgres;

/// <summary>Account history on PostgreSQL: page rows and the tail in the account's row read back the same after a whole-cluster restart.</summary>
[Collection(PostgresTestGroup.Name)]
public sealed class HistoryDurabilityTests(PostgresFixture postgres)
{
    [Theory]
    [MemberData(nameof(PostgresCluster.StorageProviders), MemberType = typeof(PostgresCluster))]
    public async Task History_and_balances_at_past_instants_survive_a_whole_cluster_restart(string storage)
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var serviceId = $"hist-{Guid.NewGuid():N}"[..20];
        string[] ids;
        HistoryEntries[] before;
        BalanceAt[] balancesBefore;

        var cluster = await PostgresCluster.StartAsync(database, serviceId, silos: 2, storage: storage);
        try
        {
            var ledger = new Ledger(cluster.Client);
            ids = await ledger.OpenFunded("hist", 2, 10_000);
            // 1 + 17 + 2 = 20 entries each, five full pages of 4, of every kind a transfer makes. The
            // last page is moved after the last write of the account's row, which still carries it:
            // after the restart, the next entry moves it again onto the row that exists already.
            for (var i = 0; i < 17; i++)
            {
                var (from, to) = i % 3 == 0 ? (ids[1], ids[0]) : (ids[0], ids[1]);
                Assert.Equal(TransferStatus.Committed, (await ledger.Execute(new TransferRequest($"{ids[0]}-t{i}", from, to, 100 + i, "USD"))).Status);
            }

            var pending = $"{ids[0]}-p";
            Assert.Equal(TransferStatus.Committed, (await ledger.Execute(TransferRequest.Pending(pending, ids[0], ids[1], 500, "USD"))).Status);
            Assert.Equal(TransferStatus.Committed, (await ledger.Coordinator.EndPending(pending, TransferPhase.Post, 200)).Status);
            (before, balancesBefore) = await Read(cluster.Client, ids);
            Assert.All(before, h => Assert.Equal(20, h.Count));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }

        var restarted = await PostgresCluster.StartAsync(database, serviceId, silos: 2, storage: storage);
        try
        {
            // The row as the last write left it: four pages counted, the fifth still in its tail.
            var head = (await restarted.Client.GetAccount(ids[0]).GetHistoryHead())!;
            Assert.Equal((20L, 4, 4), (head.Count, head.Pages, head.Tail.Count));
            var (after, balancesAfter) = await Read(restarted.Client, ids);
            for (var i = 0; i < ids.Length; i++)
            {
                Assert.Equal(before[i].Entries, after[i].Entries);
                Assert.Equal(balancesBefore[i] with { Account = null! }, balancesAfter[i] with { Account = null! });
            }

            // History goes on where it stopped, with no gap and no repeat.
            var ledger = new Ledger(restarted.Client);
            Assert.Equal(TransferStatus.Committed, (await ledger.Execute(new TransferRequest($"{ids[0]}-after", ids[0], ids[1], 7, "USD"))).Status);
            var more = (await restarted.Client.GetAccountHistory().Entries(ids[0], 20, 10))!;
            Assert.Equal((21L, HistoryKind.TransferOut, 7L), (more.Entries.Single().Sequence, more.Entries[0].Kind, more.Entries[0].AmountMinor));
            var whole = (await restarted.Client.GetAccountHistory().Entries(ids[0], 0, 100))!;
            Assert.Equal([.. before[0].Entries, more.Entries[0]], whole.Entries);
            Assert.Equal((await ledger.Snapshots([ids[0]]))[0].AvailableMinor, more.Entries[0].AvailableMinor);
        }
        finally
        {
            await restarted.StopAllSilosAsync();
            await restarted.DisposeAsync();
        }
    }

    private static async Task<(HistoryEntries[] Entries, BalanceAt[] Balances)> Read(IClusterClient client, string[] ids)
    {
        var history = client.GetAccountHistory();
        var entries = new HistoryEntries[ids.Length];
        var balances = new BalanceAt[ids.Length];
        for (var i = 0; i < ids.Length; i++)
        {
            entries[i] = (await history.Entries(ids[i], 0, 1_000))!;
            // An instant in the middle of the paged part: found by a search over page rows.
            var middle = entries[i].Entries[9];
            var last = entries[i].Entries.Last(e => e.At <= middle.At);
            balances[i] = (await history.BalanceAt(ids[i], middle.At))!;
            Assert.Equal((BalanceAtStatus.Known, last.Sequence, last.AvailableMinor), (balances[i].Status, balances[i].Sequence, balances[i].AvailableMinor));
        }

        return (entries, balances);
    }
}
