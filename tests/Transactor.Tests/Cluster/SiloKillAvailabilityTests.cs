using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using Microsoft.Extensions.Configuration;
using Transactor.Api.Hosting;
using Transactor.Grains;
using Xunit.Abstractions;

namespace Transactor.Tests.Cluster;

/// <summary>
/// Availability when one silo of three is killed under load (issue #23): movements whose accounts
/// and recovery shard live on the two surviving silos keep committing throughout, and movements
/// that touch an account of the killed silo commit again within 10 s of the kill. Afterwards every
/// record explains every balance. The client connects to every silo's gateway and stops waiting for
/// calls in flight when it loses one, as the API does (<see cref="GatewayLoss"/>). TestingHost's kill
/// stops an in-process silo at once but through its host, so its peers may learn of it sooner than of
/// a <c>kill -9</c>: ChaosSuiteTests kills a real silo process for that.
/// </summary>
public sealed class SiloKillAvailabilityTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Accounts = 36;
    private const long InitialMinor = 1_000_000;
    private const int WorkersPerGroup = 4;
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan AfterKill = TimeSpan.FromSeconds(12);

    /// <summary>The longest pause allowed between two commits of movements that touch only surviving silos.</summary>
    private static readonly TimeSpan SurvivorGapLimit = TimeSpan.FromSeconds(3);

    /// <summary>The bound: movements that touched the killed silo commit again within this of the kill.</summary>
    private static readonly TimeSpan ResumeLimit = TimeSpan.FromSeconds(10);

    private static readonly InMemoryLedgerStore Store = new();

    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<Configurator>();
        builder.AddClientBuilderConfigurator<ClientConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task Killing_one_silo_of_three_stops_nothing_that_does_not_touch_it_and_the_rest_resumes_within_10_s()
    {
        var ledger = new Ledger(_cluster.Client);
        var ids = await ledger.OpenFunded("avail", Accounts, InitialMinor);
        var management = _cluster.Client.GetGrain<IManagementGrain>(0);
        var gatewayLoss = _cluster.Client.ServiceProvider.GetRequiredService<GatewayLoss>();

        // One transfer id per recovery shard, to reach each shard as the coordinator does.
        var shardProbes = Enumerable.Range(0, 1_000).Select(n => $"probe-{n}").DistinctBy(RecoveryShards.Of).ToArray();
        Assert.Equal(RecoveryShards.Count, shardProbes.Length);
        foreach (var probe in shardProbes)
        {
            await _cluster.Client.GetRecoveryShard(probe).List(1);
        }

        // Where each account and shard lives, from the silos' own activation lists.
        var homes = (await management.GetDetailedGrainStatistics()).ToLookup(s => s.GrainId, s => s.SiloAddress);
        var accountSilo = ids.ToDictionary(id => id, id => homes[_cluster.Client.GetAccount(id).GetGrainId()].SingleOrDefault(), StringComparer.Ordinal);
        var shardSilo = shardProbes.ToDictionary(RecoveryShards.Of, probe => homes[_cluster.Client.GetRecoveryShard(probe).GetGrainId()].SingleOrDefault());

        // The victim: the secondary silo with the most accounts (the primary holds the test cluster's membership),
        // among those that leave some recovery shard alive: the shards, activated through the client's gateway,
        // may all live on one silo, and movements that touch nothing of the victim need a shard elsewhere.
        var victim = _cluster.SecondarySilos
            .Where(silo => shardSilo.Values.Any(home => home is not null && home != silo.SiloAddress))
            .MaxBy(silo => ids.Count(id => accountSilo[id] == silo.SiloAddress));
        Assert.True(victim is not null, "every secondary silo holds every recovery shard");
        output.WriteLine("accounts per silo: " + string.Join(", ", accountSilo.GroupBy(a => a.Value).Select(g => $"{g.Key}: {g.Count()}")));
        var onVictim = ids.Where(id => accountSilo[id] == victim.SiloAddress).ToArray();
        var survivors = ids.Where(id => accountSilo[id] is { } silo && silo != victim.SiloAddress).ToArray();
        Assert.True(onVictim.Length >= 2 && survivors.Length >= 4,
            $"placement left {onVictim.Length} accounts on the victim {victim.SiloAddress} and {survivors.Length} elsewhere");
        var safeShards = shardSilo.Where(s => s.Value is { } silo && silo != victim.SiloAddress).Select(s => s.Key).ToHashSet();
        Assert.NotEmpty(safeShards);

        var sent = new ConcurrentBag<TransferRequest>();
        var acknowledged = new ConcurrentBag<TransferResult>();
        var survivorCommits = new ConcurrentBag<TimeSpan>();
        var touchingCommits = new ConcurrentBag<TimeSpan>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();

        async Task Drive(int worker, bool touchesVictim, ConcurrentBag<TimeSpan> commits)
        {
            var random = new Random(worker);
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                string from, to, transferId;
                if (touchesVictim)
                {
                    var victimAccount = onVictim[random.Next(onVictim.Length)];
                    var other = survivors[random.Next(survivors.Length)];
                    (from, to) = random.Next(2) == 0 ? (victimAccount, other) : (other, victimAccount);
                    transferId = $"touch-{worker}-{n}";
                }
                else
                {
                    from = survivors[random.Next(survivors.Length)];
                    to = survivors.Where(s => s != from).ElementAt(random.Next(survivors.Length - 1));
                    var attempt = 0;
                    do
                    {
                        transferId = $"safe-{worker}-{n}-{attempt++}";
                    }
                    while (!safeShards.Contains(RecoveryShards.Of(transferId)));
                }

                var request = new TransferRequest(transferId, from, to, random.NextInt64(1, 100), "USD");
                sent.Add(request);
                // As a client that cannot tell whether its request happened: retry with the same id until it ends.
                while (true)
                {
                    try
                    {
                        var result = await ledger.Coordinator.Execute(request).WaitAsync(gatewayLoss.Token);
                        acknowledged.Add(result);
                        if (result.Status == TransferStatus.Committed)
                        {
                            commits.Add(clock.Elapsed);
                        }

                        if (result.Status != TransferStatus.Pending)
                        {
                            break;
                        }
                    }
                    catch (Exception ex) when (Ledger.IsUnanswered(ex))
                    {
                        // No answer: the same id again, as the API's retrying clients do.
                    }

                    if (stop.IsCancellationRequested)
                    {
                        return;
                    }

                    await Task.Delay(100);
                }
            }
        }

        var workers = Enumerable.Range(0, WorkersPerGroup).Select(w => Task.Run(() => Drive(w, touchesVictim: false, survivorCommits)))
            .Concat(Enumerable.Range(0, WorkersPerGroup).Select(w => Task.Run(() => Drive(100 + w, touchesVictim: true, touchingCommits))))
            .ToArray();

        await Task.Delay(WarmUp);
        var killedAt = clock.Elapsed;
        await _cluster.KillSiloAsync(victim);
        await Task.Delay(AfterKill);
        var endedAt = clock.Elapsed;
        stop.Cancel();
        await Task.WhenAll(workers);

        var survivorGap = LongestGap(survivorCommits, killedAt - TimeSpan.FromSeconds(1), endedAt);
        // Movements touching the killed silo's accounts: the longest stop after the kill, and that they flow at the end.
        var touchingGap = LongestGap(touchingCommits, killedAt, endedAt);
        var touchingAtEnd = touchingCommits.Count(t => t > endedAt - TimeSpan.FromSeconds(2));
        output.WriteLine($"killed {victim.SiloAddress} ({onVictim.Length} of {Accounts} accounts, {RecoveryShards.Count - safeShards.Count} of {RecoveryShards.Count} shards) at {killedAt.TotalSeconds:F1} s; " +
            $"surviving-silo movements: {survivorCommits.Count} committed, longest gap {survivorGap.TotalSeconds:F2} s; " +
            $"movements touching it: {touchingCommits.Count} committed, longest gap after the kill {touchingGap.TotalSeconds:F2} s, {touchingAtEnd} in the last 2 s");

        Assert.True(survivorGap <= SurvivorGapLimit,
            $"movements touching only surviving silos stopped for {survivorGap.TotalSeconds:F2} s around the kill (limit {SurvivorGapLimit.TotalSeconds} s)");
        Assert.True(touchingGap <= ResumeLimit && touchingAtEnd > 0,
            $"movements touching the killed silo's accounts stopped for {touchingGap.TotalSeconds:F2} s after the kill (limit {ResumeLimit.TotalSeconds} s), {touchingAtEnd} committed in the last 2 s");

        await ledger.WaitUntilQuiet(ids, TimeSpan.FromSeconds(60));
        await ledger.AssertRecordsExplainBalances(sent, acknowledged, ids, InitialMinor, TimeSpan.FromSeconds(60), "after the kill");
        await ledger.AssertBalanced(ids, Accounts * InitialMinor);
    }

    /// <summary>The longest time within [from, to] with no commit (the window's edges count as commits).</summary>
    private static TimeSpan LongestGap(IEnumerable<TimeSpan> commits, TimeSpan from, TimeSpan to)
    {
        var times = commits.Where(t => t > from && t < to).Order().Prepend(from).Append(to).ToArray();
        return times.Zip(times.Skip(1), (a, b) => b - a).Max();
    }

    private sealed class ClientConfigurator : IClientBuilderConfigurator
    {
        public void Configure(IConfiguration configuration, IClientBuilder clientBuilder)
        {
            clientBuilder.Services.AddSingleton<GatewayLoss>();
            clientBuilder.Services.AddSingleton<IClusterConnectionStatusObserver>(sp => sp.GetRequiredService<GatewayLoss>());
        }
    }

    private sealed class Configurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(new TestTransferFaults());
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            siloBuilder.AddInMemoryLedgerStorage(store: Store);
        }
    }
}
