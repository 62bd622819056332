using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;
using Transactor.Grains;
using Transactor.Persistence;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Postgres;

/// <summary>
/// A TestingHost cluster whose grain state and reminders live in PostgreSQL through Orleans' ADO.NET
/// providers, configured by the same <c>Orleans</c> configuration keys Aspire emits.
/// </summary>
internal static class PostgresCluster
{
    private static readonly ConcurrentDictionary<string, string> ConnectionStrings = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, bool> JsonState = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, string> Storage = new(StringComparer.Ordinal);

    /// <summary>The ledger storage providers a test can run on: Orleans' <c>AdoNet</c> and Transactor's <c>Batched</c>.</summary>
    public static TheoryData<string> StorageProviders() => new() { AdoNet, BatchedGrainStorageRegistration.ProviderType };

    public const string AdoNet = "AdoNet";

    /// <param name="storage">The ledger's grain storage provider: <see cref="AdoNet"/> or <see cref="BatchedGrainStorageRegistration.ProviderType"/>.</param>
    /// <param name="jsonState">Encode grain state as Orleans' providers do by default (Newtonsoft JSON), as Transactor did before it chose <see cref="LedgerStorageSerializer"/>; as those versions did, it records no account history.</param>
    public static async Task<TestCluster> StartAsync(string connectionString, string serviceId, int silos = 1, bool jsonState = false, string storage = AdoNet)
    {
        await LedgerSchema.MigrateAsync(connectionString);
        ConnectionStrings[serviceId] = connectionString;
        JsonState[serviceId] = jsonState;
        Storage[serviceId] = storage;
        var builder = new TestClusterBuilder((short)silos);
        builder.Options.ServiceId = serviceId;
        builder.Options.ClusterId = $"{serviceId}-{Guid.NewGuid():N}"[..40];
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            var serviceId = siloBuilder.Configuration["Orleans:ServiceId"] ?? siloBuilder.Configuration["ServiceId"]
                ?? throw new InvalidOperationException("The test cluster's configuration has no ServiceId.");
            var connectionString = ConnectionStrings[serviceId];
            var jsonState = JsonState[serviceId];
            if (Storage[serviceId] == BatchedGrainStorageRegistration.ProviderType)
            {
                siloBuilder.AddBatchedGrainStorage(StorageNames.Ledger, connectionString);
            }
            else
            {
                siloBuilder.AddAdoNetGrainStorage(StorageNames.Ledger, options =>
                {
                    options.Invariant = LedgerSchema.Invariant;
                    options.ConnectionString = connectionString;
                });
            }

            if (jsonState)
            {
                siloBuilder.Services.AddOptions<AdoNetGrainStorageOptions>(StorageNames.Ledger)
                    .Configure<OrleansJsonSerializer>((options, json) => options.GrainStorageSerializer = new JsonGrainStorageSerializer(json));
                // Versions that wrote JSON (before 2026-11-24) recorded no history, which came after
                // them; Newtonsoft cannot carry the tail's bytes (a ReadOnlyMemory) anyway.
                siloBuilder.Services.PostConfigure<TransferOptions>(options => options.RecordHistory = false);
            }
            siloBuilder.UseAdoNetReminderService(options =>
            {
                options.Invariant = LedgerSchema.Invariant;
                options.ConnectionString = connectionString;
            });
            siloBuilder.Services.AddSingleton<ITransferFaults, NoTransferFaults>();
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder, sweepPeriod: TimeSpan.FromSeconds(2));
        }
    }
}
