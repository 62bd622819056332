using System.Collections.Concurrent;
using Transactor.Persistence;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Postgres;

/// <summary>
/// PostgreSQL itself crashes (<c>pg_ctl stop -m immediate</c>, with <c>fsync=on</c>) while a silo on the
/// batched provider moves money; after the restart every transfer acknowledged as committed is recorded
/// as committed, each balance is what the records say, and the books balance.
/// </summary>
public sealed class DatabaseCrashTests
{
    private const int Accounts = 20;
    private const long InitialMinor = 10_000;
    private const int Workers = 32;
    private static readonly TimeSpan LoadBeforeCrash = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan LoadAfterRestart = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task An_immediate_database_stop_under_batched_load_loses_no_acknowledged_transfer()
    {
        await using var server = await PostgresServer.StartAsync(durable: true);
        var database = await server.CreateDatabaseAsync("crash");
        var cluster = await PostgresCluster.StartAsync(database, $"pgcrash-{Guid.NewGuid():N}"[..20], storage: BatchedGrainStorageRegistration.ProviderType);
        try
        {
            var ledger = new Ledger(cluster.Client);
            var ids = await ledger.OpenFunded("pgcrash", Accounts, InitialMinor);
            var sent = new ConcurrentBag<TransferRequest>();
            var acknowledged = new ConcurrentBag<TransferResult>();
            using var stop = new CancellationTokenSource();
            var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                var random = new Random(w);
                for (var n = 0; !stop.IsCancellationRequested; n++)
                {
                    var from = random.Next(Accounts);
                    var to = (from + 1 + random.Next(Accounts - 1)) % Accounts;
                    var request = new TransferRequest($"pgcrash-w{w}-{n}", ids[from], ids[to], random.NextInt64(1, 2_000), "USD");
                    sent.Add(request);
                    try
                    {
                        acknowledged.Add(await ledger.Coordinator.Execute(request));
                    }
                    catch (Exception)
                    {
                        // Not acknowledged (the database is down): its record decides whether it happened.
                    }
                }
            })).ToArray();

            await Task.Delay(LoadBeforeCrash);
            var acknowledgedBeforeCrash = acknowledged.Count;
            await server.StopImmediatelyAsync();
            await server.StartAgainAsync();
            await Task.Delay(LoadAfterRestart);
            await stop.CancelAsync();
            await Task.WhenAll(workers);
            await ledger.WaitUntilQuiet(ids, RecoveryTimeout);

            await ledger.AssertRecordsExplainBalances(sent, acknowledged, ids, InitialMinor, RecoveryTimeout, "after the database crash");
            await ledger.AssertBalanced(ids, Accounts * InitialMinor);
            Assert.True(acknowledgedBeforeCrash > 50, $"only {acknowledgedBeforeCrash} transfers acknowledged before the crash");
            Assert.True(acknowledged.Count > acknowledgedBeforeCrash, "no transfer was acknowledged after the restart");
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}
