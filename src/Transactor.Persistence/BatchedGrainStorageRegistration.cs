using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Providers;
using Orleans.Runtime.Hosting;
using Orleans.Storage;
using Transactor.Persistence;

[assembly: RegisterProvider(BatchedGrainStorageRegistration.ProviderType, "GrainStorage", "Silo", typeof(BatchedGrainStorageProviderBuilder))]

namespace Transactor.Persistence;

public static class BatchedGrainStorageRegistration
{
    /// <summary>The <c>ProviderType</c> that selects <see cref="BatchedGrainStorage"/> in the <c>Orleans:GrainStorage</c> configuration.</summary>
    public const string ProviderType = "Batched";

    /// <summary>Stores grain state under <paramref name="name"/> with <see cref="BatchedGrainStorage"/>.</summary>
    public static ISiloBuilder AddBatchedGrainStorage(this ISiloBuilder silo, string name, Action<OptionsBuilder<BatchedGrainStorageOptions>>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentException.ThrowIfNullOrEmpty(name);
        configure?.Invoke(silo.Services.AddOptions<BatchedGrainStorageOptions>(name));
        // The serializer keyed by the storage's name (Transactor's binary one for the ledger), else Orleans' default.
        silo.Services.AddTransient<IPostConfigureOptions<BatchedGrainStorageOptions>, DefaultStorageProviderSerializerOptionsConfigurator<BatchedGrainStorageOptions>>();
        silo.Services.AddGrainStorage(name, BatchedGrainStorage.Create);
        return silo;
    }

    /// <summary>Stores grain state under <paramref name="name"/> with <see cref="BatchedGrainStorage"/> on <paramref name="connectionString"/>.</summary>
    public static ISiloBuilder AddBatchedGrainStorage(this ISiloBuilder silo, string name, string connectionString) =>
        silo.AddBatchedGrainStorage(name, o => o.Configure(options => options.ConnectionString = connectionString));
}

/// <summary>Reads <c>Orleans:GrainStorage:&lt;name&gt;</c> with the keys of Orleans' ADO.NET provider.</summary>
internal sealed class BatchedGrainStorageProviderBuilder : IProviderBuilder<ISiloBuilder>
{
    public void Configure(ISiloBuilder builder, string? name, IConfigurationSection configurationSection)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configurationSection);
        builder.AddBatchedGrainStorage(name ?? ProviderConstants.DEFAULT_STORAGE_PROVIDER_NAME, o => o.Configure<IServiceProvider>((options, services) =>
        {
            if (configurationSection[nameof(options.Invariant)] is { Length: > 0 } invariant)
            {
                options.Invariant = invariant;
            }

            var connectionString = configurationSection[nameof(options.ConnectionString)];
            if (string.IsNullOrEmpty(connectionString) && configurationSection["ConnectionName"] is { Length: > 0 } connectionName)
            {
                connectionString = services.GetRequiredService<IConfiguration>().GetConnectionString(connectionName);
            }

            if (!string.IsNullOrEmpty(connectionString))
            {
                options.ConnectionString = connectionString;
            }

            if (configurationSection["SerializerKey"] is { Length: > 0 } serializerKey)
            {
                options.GrainStorageSerializer = services.GetRequiredKeyedService<IGrainStorageSerializer>(serializerKey);
            }

            foreach (var (key, set) in new (string, Action<int>)[]
            {
                (nameof(options.MaxBatchWrites), v => options.MaxBatchWrites = v),
                (nameof(options.MaxBatchReads), v => options.MaxBatchReads = v),
                (nameof(options.MaxBatchBytes), v => options.MaxBatchBytes = v),
                (nameof(options.MaxQueuedOperations), v => options.MaxQueuedOperations = v),
            })
            {
                if (configurationSection.GetValue<int?>(key) is { } value)
                {
                    set(value);
                }
            }
        }));
    }
}
