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

            var records = new Dictionary<string, TransferResult>(StringComparer.Ordinal);
            foreach (var request in sent)
            {
                if (await ledger.WaitForEnd(request.TransferId, RecoveryTimeout) is { } record)
                {
                    records[request.TransferId] = record;
                }
            }

            foreach (var ack in acknowledged.Where(a => a.Status == TransferStatus.Committed))
            {
                Assert.True(records.TryGetValue(ack.TransferId, out var record) && record.Status == TransferStatus.Committed,
                    $"acknowledged transfer {ack.TransferId} is not recorded as committed after the database crash");
            }

            var expected = ids.ToDictionary(id => id, _ => InitialMinor, StringComparer.Ordinal);
            foreach (var record in records.Values.Where(r => r.Status == TransferStatus.Committed))
            {
                expected[record.Request.DebitAccountId!] -= record.Request.AmountMinor;
                expected[record.Request.CreditAccountId!] += record.Request.AmountMinor;
            }

            foreach (var s in await ledger.Snapshots(ids))
            {
                Assert.True(expected[s.AccountId] == s.AvailableMinor, $"{s.AccountId} holds {s.AvailableMinor}, its committed transfers say {expected[s.AccountId]}");
            }

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
