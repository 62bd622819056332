using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Serialization;
using Orleans.Storage;
using Transactor.Domain;

namespace Transactor.Grains;

public static class SiloBuilderExtensions
{
    /// <summary>
    /// Adds Transactor's grains' services: transfer options (from <see cref="TransferOptions.SectionName"/>
    /// when <paramref name="configuration"/> is given), metrics, the clock, no fault injection, and the
    /// binary <see cref="LedgerStorageSerializer"/> for whichever provider stores <see cref="StorageNames.Ledger"/>.
    /// Storage and reminders are chosen by the host.
    /// </summary>
    public static ISiloBuilder AddTransactor(this ISiloBuilder silo, IConfiguration? configuration = null, Action<TransferOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(silo);
        // A silo with limits it cannot use must not start: it would fail every movement instead.
        var options = silo.Services.AddOptions<TransferOptions>()
            .Validate(o => o.MaxConcurrentTransfers is null or > 0, $"{TransferOptions.SectionName}:{nameof(TransferOptions.MaxConcurrentTransfers)} must be at least 1.")
            .Validate(o => o.MaxQueuedTransfers >= 0, $"{TransferOptions.SectionName}:{nameof(TransferOptions.MaxQueuedTransfers)} must not be negative.")
            .Validate(o => o.HistoryPageSize is >= 1 and <= Domain.AccountBook.MaxHistoryPageSize, $"{TransferOptions.SectionName}:{nameof(TransferOptions.HistoryPageSize)} must be from 1 to {Domain.AccountBook.MaxHistoryPageSize}.")
            .Validate(o => o.HistoryScanPerRead is >= 1 and <= AccountHistoryGrain.MaxEntriesPerRead, $"{TransferOptions.SectionName}:{nameof(TransferOptions.HistoryScanPerRead)} must be from 1 to {AccountHistoryGrain.MaxEntriesPerRead}.")
            .Validate(o => o.BatchItemDeadline > TimeSpan.Zero && o.BatchItemDeadline < TimeSpan.Parse(CallTimeouts.Patient, System.Globalization.CultureInfo.InvariantCulture), $"{TransferOptions.SectionName}:{nameof(TransferOptions.BatchItemDeadline)} must be positive and under the {CallTimeouts.Patient} its callers wait.")
            .Validate(o => o.Admission.Invalid() is null, $"{TransferOptions.SectionName}:{nameof(TransferOptions.Admission)} is invalid (MinLimit >= 1, MaxLimit >= MinLimit, TargetLatency and Window positive, BackoffRatio in (0,1)).")
            .ValidateOnStart();
        if (configuration is not null)
        {
            options.Bind(configuration.GetSection(TransferOptions.SectionName));
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        silo.Services.AddMetrics();
        silo.Services.TryAddSingleton(TimeProvider.System);
        silo.Services.TryAddSingleton<ITransferFaults, NoTransferFaults>();
        silo.Services.TryAddSingleton<TransactorInstruments>();
        silo.Services.TryAddSingleton<HistoryCodec>();
        silo.Services.TryAddSingleton<TransferAdmission>();
        if (!silo.Services.Any(d => d.ServiceType == typeof(LedgerEventPublisher)))
        {
            silo.Services.AddSingleton<LedgerEventPublisher>();
            silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LedgerEventPublisher>());
        }

        // Orleans' providers look for a serializer keyed by their name before the JSON default.
        silo.Services.TryAddKeyedSingleton<IGrainStorageSerializer, LedgerStorageSerializer>(StorageNames.Ledger);
        return silo;
    }

    /// <summary>
    /// Everything a Transactor silo needs, with defaults for what configuration leaves open: the
    /// grains' services, and in-memory ledger storage and reminders unless the <c>Orleans</c>
    /// section names providers for them (<c>Orleans:GrainStorage:ledger</c>, <c>Orleans:Reminders</c>).
    /// Clustering is the host's choice. The process refuses silo and gateway ports another process
    /// listens on (<see cref="ListenPortCheck"/>), refuses other silos' connections until it has joined,
    /// when they can only be meant for its predecessor on the same address (<see cref="SupersededSiloGuard"/>),
    /// and its stop is bounded (<see cref="StopOptions"/>).
    /// </summary>
    public static ISiloBuilder AddTransactorSilo(this ISiloBuilder silo, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentNullException.ThrowIfNull(configuration);
        silo.AddTransactor(configuration);
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, ListenPortCheck>();
        silo.Services.AddSingleton<SupersededSiloGuard>();
        silo.Services.AddOptions<SiloConnectionOptions>().Configure<IServiceProvider>((connections, services) =>
            connections.ConfigureSiloInboundConnection(builder => builder.Use(services.GetRequiredService<SupersededSiloGuard>().Wrap)));
        // Orleans refuses to register a reminder more frequent than this (1 minute by default), so
        // a recovery shard configured to sweep more often would fail to activate.
        silo.Services.AddOptions<ReminderOptions>().Configure<IOptions<TransferOptions>>((reminders, transfers) =>
            reminders.MinimumReminderPeriod = TimeSpan.FromTicks(Math.Min(reminders.MinimumReminderPeriod.Ticks, transfers.Value.RecoveryPeriod.Ticks)));
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, RecoveryWakeUp>();
        silo.Services.AddKeyedSingleton<TimeProvider>(TimeProviderNames.Membership, (_, _) => new MembershipClock());
        silo.Services.AddOptions<StopOptions>().Bind(configuration.GetSection(StopOptions.SectionName));
        silo.Services.AddOptions<HostOptions>().Configure<IOptions<StopOptions>>((host, stop) => host.ShutdownTimeout = stop.Value.StopTimeout);
        silo.Services.AddHostedService<StopDeadline>();
        silo.Services.AddOptions<FailureDetectionOptions>().Bind(configuration.GetSection(FailureDetectionOptions.SectionName))
            .Validate(o => o.ProbeTimeout > TimeSpan.Zero && o.NumMissedProbesLimit >= 1 && o.NumVotesForDeathDeclaration >= 1
                && o.DeathVoteExpirationTimeout > TimeSpan.Zero && o.IAmAliveTablePublishTimeout > TimeSpan.Zero && o.TableRefreshTimeout > TimeSpan.Zero
                && o.PlacementTimeout >= TimeSpan.FromMilliseconds(10) && o.ResponseTimeoutInRange,
                $"{FailureDetectionOptions.SectionName}: every timeout must be positive, every count at least 1, and ResponseTimeout between {FailureDetectionOptions.MinResponseTimeout.TotalSeconds} s and {FailureDetectionOptions.MaxResponseTimeout.TotalSeconds} s.")
            .ValidateOnStart();
        silo.Services.AddOptions<ClusterMembershipOptions>().Configure<IOptions<FailureDetectionOptions>>((membership, detection) => detection.Value.ApplyTo(membership));
        silo.Services.AddOptions<SiloMessagingOptions>().Configure<IOptions<FailureDetectionOptions>>((messaging, detection) =>
        {
            messaging.PlacementTimeout = detection.Value.PlacementTimeout;
            messaging.ResponseTimeout = detection.Value.ResponseTimeout;
        });
        if (configuration[$"Orleans:GrainStorage:{StorageNames.Ledger}:ProviderType"] is not { Length: > 0 })
        {
            silo.AddInMemoryLedgerStorage();
        }

        if (configuration["Orleans:Reminders:ProviderType"] is not { Length: > 0 })
        {
            silo.UseInMemoryReminderService();
        }

        return silo;
    }

    /// <summary>
    /// Stores grain state under <paramref name="name"/> in an <see cref="InMemoryLedgerStore"/>:
    /// <paramref name="store"/> when given (to share one store between silos of one process), else one per silo.
    /// For the ledger's storage, recovery shards then write without gathering (<see cref="TransferOptions.RecoveryWriteDelay"/>),
    /// and unless configured, a silo drives <see cref="TransferOptions.InMemoryPlacesPerProcessor"/> movements per processor at once.
    /// </summary>
    public static ISiloBuilder AddInMemoryLedgerStorage(this ISiloBuilder silo, string name = StorageNames.Ledger, InMemoryLedgerStore? store = null)
    {
        ArgumentNullException.ThrowIfNull(silo);
        if (store is not null)
        {
            silo.Services.TryAddSingleton(store);
        }
        else
        {
            silo.Services.TryAddSingleton<InMemoryLedgerStore>();
        }

        silo.Services.AddKeyedSingleton<IGrainStorage>(
            name,
            (sp, _) => new InMemoryGrainStorage(sp.GetRequiredService<InMemoryLedgerStore>(), sp.GetRequiredService<Serializer>()));
        if (name == StorageNames.Ledger)
        {
            // A write to memory costs no round trip: gathering changes for it would only add latency,
            // and a movement needs only the processors, so fewer at once keep them as busy.
            silo.Services.Configure<TransferOptions>(o => o.RecoveryWriteDelay = TimeSpan.Zero);
            silo.Services.PostConfigure<TransferOptions>(o => o.MaxConcurrentTransfers ??= TransferOptions.InMemoryPlacesPerProcessor * Environment.ProcessorCount);
        }

        return silo;
    }
}
