using Transactor.Persistence;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Postgres;

/// <summary>
/// Three silos on PostgreSQL under concurrent transfers; one silo is killed (not stopped) in the
/// middle and another started. Afterwards every transfer is applied exactly as its record says,
/// nothing is in flight, money is conserved and no balance is negative.
/// </summary>
[Collection(PostgresTestGroup.Name)]
public sealed class SiloCrashTests(PostgresFixture postgres)
{
    private const int Accounts = 50;
    private const long InitialMinor = 10_000;
    private const int Workers = 32;
    private static readonly TimeSpan LoadDuration = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(90);

    [Theory]
    [InlineData(1, PostgresCluster.AdoNet)]
    [InlineData(2, BatchedGrainStorageRegistration.ProviderType)]
    [InlineData(3, PostgresCluster.AdoNet)]
    public async Task Killing_a_silo_under_load_loses_nothing_and_applies_nothing_twice(int seed, string storage)
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var cluster = await PostgresCluster.StartAsync(database, $"crash-{seed}-{Guid.NewGuid():N}"[..20], silos: 3, storage: storage);
        try
        {
            var ledger = new Ledger(cluster.Client);
            var ids = await ledger.OpenFunded($"s{seed}", Accounts, InitialMinor);
            var sent = new System.Collections.Concurrent.ConcurrentBag<TransferRequest>();
            var acknowledged = new System.Collections.Concurrent.ConcurrentBag<TransferResult>();
            var failures = 0;
            var stopAt = DateTime.UtcNow + LoadDuration;

            var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                var random = new Random(seed * 1_000 + w);
                for (var n = 0; DateTime.UtcNow < stopAt; n++)
                {
                    var from = random.Next(Accounts);
                    var to = (from + 1 + random.Next(Accounts - 1)) % Accounts;
                    var request = new TransferRequest($"s{seed}-w{w}-{n}", ids[from], ids[to], random.NextInt64(1, 3_000), "USD");
                    sent.Add(request);
                    try
                    {
                        acknowledged.Add(await ledger.Coordinator.Execute(request));
                    }
                    catch (Exception ex) when (Ledger.IsUnanswered(ex))
                    {
                        // Not acknowledged: its record decides whether it happened.
                        Interlocked.Increment(ref failures);
                    }
                }
            })).ToArray();

            await Task.Delay(LoadDuration / 3);
            var victim = cluster.Silos.First(s => s != cluster.Primary);
            await cluster.KillSiloAsync(victim);
            await Task.Delay(LoadDuration / 6);
            await cluster.StartAdditionalSiloAsync();
            await Task.WhenAll(workers);

            await ledger.WaitUntilQuiet(ids, RecoveryTimeout);

            // Every acknowledged commit is recorded as committed; each balance is its start plus its committed records.
            await ledger.AssertRecordsExplainBalances(sent, acknowledged, ids, InitialMinor, RecoveryTimeout, $"seed {seed}");
            await ledger.AssertBalanced(ids, Accounts * InitialMinor);
            Assert.True(acknowledged.Count(a => a.Status == TransferStatus.Committed) > 100, $"seed {seed}: only {acknowledged.Count} transfers acknowledged, {failures} failed");
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}
