using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// One 3-silo cluster shared by the cluster tests. The silos share one in-memory store (as silos
/// share a database), so accounts land on different silos and state outlives an activation.
/// Recovery timings are short so interrupted transfers finish within seconds (<see cref="AddTransactorWithShortRecovery"/>).
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const int SiloCount = 3;

    internal static readonly InMemoryLedgerStore Store = new();

    internal static readonly TestTransferFaults Faults = new();

    /// <summary>Entries per history page in the test clusters (the default is 8).</summary>
    internal const int HistoryPageSize = 4;

    /// <summary>Entries one history read filtered by metadata looks at in the test clusters (the default is 1,000).</summary>
    internal const int HistoryScanPerRead = 10;

    public TestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    /// <summary>
    /// Stores <paramref name="state"/> as the row of <paramref name="grainId"/>, as a silo of an
    /// earlier version or one that died would have left it. The row must not exist yet.
    /// </summary>
    public void StoreRow<T>(string stateName, GrainId grainId, T state)
    {
        var serializer = Client.ServiceProvider.GetRequiredService<Serializer>();
        Assert.True(Store.Rows.TryAdd((stateName, grainId), Store.NewRow(serializer.SerializeToArray(state), 1)), $"The row '{stateName}' of {grainId} exists already.");
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(SiloCount);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(Faults);
            AddTransactorWithShortRecovery(siloBuilder);
            siloBuilder.AddInMemoryLedgerStorage(store: Store);
        }
    }

    /// <summary>
    /// The ledger with the in-memory reminder service and recovery timings short enough that a
    /// movement left by a crash or a failed call ends within seconds. Storage is the caller's.
    /// </summary>
    internal static void AddTransactorWithShortRecovery(ISiloBuilder siloBuilder)
    {
        AddTransactorWithShortRecovery(siloBuilder, sweepPeriod: TimeSpan.FromSeconds(1));
        siloBuilder.UseInMemoryReminderService();
    }

    /// <summary>
    /// The ledger with short leases and waits, and recovery sweeps every <paramref name="sweepPeriod"/>
    /// (reminders may fire that often). Storage and reminders are the caller's.
    /// </summary>
    internal static void AddTransactorWithShortRecovery(ISiloBuilder siloBuilder, TimeSpan sweepPeriod)
    {
        siloBuilder.AddTransactor(configure: options =>
        {
            options.LeaseDuration = TimeSpan.FromSeconds(5);
            options.RecoveryDueTime = sweepPeriod;
            options.RecoveryPeriod = sweepPeriod;
            options.WaitTimeout = TimeSpan.FromSeconds(5);
            // Small pages, so that the tests read most history from page rows and move pages often.
            options.HistoryPageSize = HistoryPageSize;
            // A small bound, so that filtered reads of short histories already stop part way and continue.
            options.HistoryScanPerRead = HistoryScanPerRead;
        });
        siloBuilder.Configure<ReminderOptions>(options => options.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterTestGroup : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}

/// <summary>Stops the coordinator of chosen transfers dead at a chosen step, once, as a crash would.</summary>
internal sealed class TestTransferFaults : ITransferFaults
{
    private readonly ConcurrentDictionary<string, TransferStep> _armed = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TransferStep> _fired = new(StringComparer.Ordinal);

    public void Arm(string transferId, TransferStep step) => _armed[transferId] = step;

    public bool Fired(string transferId) => _fired.ContainsKey(transferId);

    public void OnStep(TransferStep step, string transferId)
    {
        if (_armed.TryGetValue(transferId, out var armed) && armed == step && _armed.TryRemove(transferId, out _))
        {
            _fired[transferId] = step;
            throw new InjectedFaultException($"Injected crash of transfer '{transferId}' at {step}.");
        }
    }
}
