using Transactor.Tests.Cluster;

namespace Transactor.Tests.Postgres;

/// <summary>
/// The timeout of a pending transfer is an Orleans reminder in PostgreSQL (the ADO.NET reminders
/// table): pending transfers placed on a three-silo cluster outlive a silo killed (not stopped) and
/// then a stop of the whole cluster, and each is voided once its timeout has run out, never before,
/// with every hold released and money conserved.
/// </summary>
[Collection(PostgresTestGroup.Name)]
public sealed class PendingTimeoutDurabilityTests(PostgresFixture postgres)
{
    private const int Pairs = 6;
    private const long FundedMinor = 1_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ExpiryWait = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Pending_transfers_survive_a_silo_kill_and_a_full_restart_and_still_expire()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var serviceId = $"pend-{Guid.NewGuid():N}"[..20];
        var cluster = await PostgresCluster.StartAsync(database, serviceId, silos: 3);
        var ids = Array.Empty<string>();
        var placed = new List<TransferResult>();
        try
        {
            var ledger = new Ledger(cluster.Client);
            ids = await ledger.OpenFunded(Ledger.NewId("pd"), 2 * Pairs, FundedMinor);
            foreach (var credit in ids.Where((_, i) => i % 2 == 1))
            {
                // Credit accounts start empty: withdraw what OpenFunded deposited.
                Assert.Equal(TransferStatus.Committed, (await ledger.Execute(TransferRequest.Withdrawal(Ledger.NewId("w"), credit, FundedMinor))).Status);
            }
            for (var i = 0; i < Pairs; i++)
            {
                var held = await ledger.Coordinator.Execute(TransferRequest.Pending(Ledger.NewId("pt"), ids[2 * i], ids[2 * i + 1], 100 * (i + 1), "USD", Timeout));
                Assert.Equal(TransferStatus.Committed, held.Status);
                placed.Add(held);
            }

            // Some of the timeouts' grains, and of the accounts, lived on the victim.
            await cluster.KillSiloAsync(cluster.Silos.First(s => s != cluster.Primary));
            foreach (var held in placed)
            {
                // Still on hold: only the reminders, stored in PostgreSQL, can end them after the restart.
                Assert.Null(await cluster.Client.GetTransferResult(PendingTransfers.EndId(held.TransferId)));
            }

            await cluster.StopAllSilosAsync();
            Assert.True(DateTimeOffset.UtcNow < placed[0].CreatedAt + Timeout, "the cluster took longer to stop than the timeout: the test would not show the restart");
        }
        finally
        {
            await cluster.DisposeAsync();
        }

        var restarted = await PostgresCluster.StartAsync(database, serviceId, silos: 1);
        try
        {
            var ledger = new Ledger(restarted.Client);
            foreach (var held in placed)
            {
                var expired = await WaitForEnd(restarted.Client, held.TransferId);
                Assert.Equal(TransferPhase.Expire, expired.Request.Phase);
                Assert.True(expired.CreatedAt >= held.CreatedAt + Timeout, $"{held.TransferId} expired at {expired.CreatedAt:O}, placed at {held.CreatedAt:O} with a timeout of {Timeout}");
                Assert.Equal(RejectionReason.PendingTransferExpired, (await ledger.Coordinator.EndPending(held.TransferId, TransferPhase.Post, null)).Reason);
            }

            foreach (var snapshot in await ledger.Snapshots(ids))
            {
                // Debit accounts have even numbers: each got its whole balance back.
                var expected = int.Parse(snapshot.AccountId[^5..], System.Globalization.CultureInfo.InvariantCulture) % 2 == 0 ? FundedMinor : 0;
                Assert.True(
                    (expected, 0L, 0L, 0L, 0L) == (snapshot.AvailableMinor, snapshot.PendingDebitMinor, snapshot.PendingCreditMinor, snapshot.ReservedMinor, snapshot.IncomingMinor),
                    $"account {snapshot.AccountId}: available {snapshot.AvailableMinor} (expected {expected}), pending {snapshot.PendingDebitMinor}/{snapshot.PendingCreditMinor}, in flight {snapshot.ReservedMinor}/{snapshot.IncomingMinor}");
            }
        }
        finally
        {
            await restarted.StopAllSilosAsync();
            await restarted.DisposeAsync();
        }
    }

    private static async Task<TransferResult> WaitForEnd(IClusterClient client, string pendingId)
    {
        var deadline = DateTime.UtcNow + ExpiryWait;
        while (true)
        {
            if (await client.GetTransferResult(PendingTransfers.EndId(pendingId)) is { Status: not TransferStatus.Pending } ended)
            {
                return ended;
            }

            Assert.True(DateTime.UtcNow < deadline, $"pending transfer {pendingId} did not expire within {ExpiryWait} of the restart");
            await Task.Delay(200);
        }
    }
}
