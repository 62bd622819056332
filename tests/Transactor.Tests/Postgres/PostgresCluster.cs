using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using Transactor.Grains;
using Transactor.Persistence;

namespace Transactor.Tests.Postgres;

/// <summary>
/// A TestingHost cluster whose grain state and reminders live in PostgreSQL through Orleans' ADO.NET
/// providers, configured by the same <c>Orleans</c> configuration keys Aspire emits.
/// </summary>
internal static class PostgresCluster
{
    private static readonly ConcurrentDictionary<string, string> ConnectionStrings = new(StringComparer.Ordinal);

    public static async Task<TestCluster> StartAsync(string connectionString, string serviceId, int silos = 1)
    {
        await LedgerSchema.MigrateAsync(connectionString);
        ConnectionStrings[serviceId] = connectionString;
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
            siloBuilder.AddAdoNetGrainStorage(StorageNames.Ledger, options =>
            {
                options.Invariant = LedgerSchema.Invariant;
                options.ConnectionString = connectionString;
            });
            siloBuilder.UseAdoNetReminderService(options =>
            {
                options.Invariant = LedgerSchema.Invariant;
                options.ConnectionString = connectionString;
            });
            siloBuilder.Services.AddSingleton<ITransferFaults, NoTransferFaults>();
            siloBuilder.AddTransactor(configure: options =>
            {
                options.LeaseDuration = TimeSpan.FromSeconds(5);
                options.ClockSkewAllowance = TimeSpan.FromSeconds(1);
                options.RecoveryDueTime = TimeSpan.FromSeconds(2);
                options.RecoveryPeriod = TimeSpan.FromSeconds(2);
                options.WaitTimeout = TimeSpan.FromSeconds(5);
            });
            siloBuilder.Configure<ReminderOptions>(options => options.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
        }
    }
}
