using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Serialization;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>The kinds of fault chaos mode injects, as named in metrics.</summary>
public enum ChaosFaultKind
{
    Delay,
    Drop,
    StorageWrite,
    StorageRead,
}

/// <summary>
/// What chaos mode is set to on this silo and what it injected so far (shown in the embedded API's
/// <c>/metrics</c> and counted in the meter as <c>transactor.chaos.faults</c>), and whether it is armed now.
/// </summary>
public sealed partial class ChaosMonitor : ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>How long a look at <see cref="ChaosOptions.ArmedFile"/> is trusted: a file check on every call would cost more than the call.</summary>
    private static readonly TimeSpan ArmedCheckInterval = TimeSpan.FromMilliseconds(250);

    private readonly ConcurrentDictionary<ChaosFaultKind, long> _injected = new();
    private readonly TransactorInstruments _instruments;
    private readonly ILogger<ChaosMonitor> _logger;
    private readonly Lock _lock = new();
    private long _nextArmedCheckMs;
    private bool _armed;

    public ChaosMonitor(ChaosOptions options, ILocalSiloDetails silo, TransactorInstruments instruments, ILogger<ChaosMonitor> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(silo);
        Options = options;
        Silo = silo.Name;
        Active = options.Silos.Count == 0 || options.Silos.Contains(silo.Name, StringComparer.OrdinalIgnoreCase);
        _instruments = instruments;
        _logger = logger;
    }

    public ChaosOptions Options { get; }

    /// <summary>This silo's name, as <see cref="ChaosOptions.Silos"/> names silos.</summary>
    public string Silo { get; }

    /// <summary>Whether this silo is one of the chosen ones.</summary>
    public bool Active { get; }

    public IReadOnlyDictionary<ChaosFaultKind, long> InjectedByKind => new SortedDictionary<ChaosFaultKind, long>(_injected);

    /// <summary>Faults injected on this silo since it started, of every kind.</summary>
    public long InjectedTotal => _injected.Values.Sum();

    /// <summary>Whether faults may be injected now: on a chosen silo, and while the armed file exists when one is named.</summary>
    public bool Armed()
    {
        if (!Active)
        {
            return false;
        }

        if (Options.ArmedFile is not { Length: > 0 } file)
        {
            return true;
        }

        var now = Environment.TickCount64;
        lock (_lock)
        {
            if (now >= _nextArmedCheckMs)
            {
                _armed = File.Exists(file);
                _nextArmedCheckMs = now + (long)ArmedCheckInterval.TotalMilliseconds;
            }

            return _armed;
        }
    }

    public void Injected(ChaosFaultKind kind)
    {
        _injected.AddOrUpdate(kind, 1, (_, n) => n + 1);
        _instruments.ChaosFault(kind);
    }

    public void Participate(ISiloLifecycle observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        observer.Subscribe(nameof(ChaosMonitor), ServiceLifecycleStage.Active, _ =>
        {
            if (Active)
            {
                LogOn(_logger, Silo, Options.DelayProbability, Options.MaxDelay.TotalMilliseconds, Options.DropProbability,
                    Options.StorageWriteFailureProbability, Options.StorageReadFailureProbability, Options.Seed, Options.ArmedFile);
            }
            else
            {
                LogNotHere(_logger, Silo, Options.Silos);
            }

            return Task.CompletedTask;
        });
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "CHAOS MODE IS ON on silo {Silo}: grain calls delayed {DelayProbability} (up to {MaxDelayMs} ms) and dropped {DropProbability}, "
        + "ledger storage writes failed {WriteFailureProbability} and reads failed {ReadFailureProbability}; seed {Seed}; armed file {ArmedFile} (none: always armed). Never in production.")]
    private static partial void LogOn(ILogger logger, string silo, double delayProbability, double maxDelayMs, double dropProbability, double writeFailureProbability, double readFailureProbability, int? seed, string? armedFile);

    [LoggerMessage(Level = LogLevel.Information, Message = "Chaos mode is configured, but not on silo {Silo} (chosen: {Silos})")]
    private static partial void LogNotHere(ILogger logger, string silo, IReadOnlyList<string> silos);
}

public static class ChaosFaults
{
    /// <summary>
    /// Adds chaos mode when <see cref="ChaosOptions.SectionName"/> sets a probability: the message
    /// fault filter, and the failing wrapper around the ledger's grain storage (which must be
    /// registered before this call, as <see cref="SiloBuilderExtensions.AddTransactorSilo"/> does).
    /// Otherwise adds nothing.
    /// </summary>
    public static ISiloBuilder AddChaosFaultsIfConfigured(this ISiloBuilder silo, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentNullException.ThrowIfNull(configuration);
        var options = configuration.GetSection(ChaosOptions.SectionName).Get<ChaosOptions>();
        if (options is not { Enabled: true })
        {
            return silo;
        }

        if (options.Invalid() is { } invalid)
        {
            throw new InvalidOperationException($"{ChaosOptions.SectionName}: {invalid}.");
        }

        silo.Services.AddSingleton(options);
        silo.Services.AddSingleton<ChaosMonitor>();
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ChaosMonitor>());
        silo.Services.AddChaosExceptionSerialization();
        if (options.MessageFaults)
        {
            silo.AddIncomingGrainCallFilter<ChaosFaultFilter>();
        }

        if (options.StorageFaults)
        {
            var ledger = silo.Services.LastOrDefault(d => d.ServiceType == typeof(IGrainStorage) && d.IsKeyedService && Equals(d.ServiceKey, StorageNames.Ledger))
                ?? throw new InvalidOperationException($"{ChaosOptions.SectionName}: storage faults need the '{StorageNames.Ledger}' grain storage registered first.");
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Ledger, (sp, key) => new ChaosGrainStorage(
                Create(ledger, sp, key), options, sp.GetRequiredService<ChaosMonitor>(), sp.GetRequiredService<ILogger<ChaosGrainStorage>>()));
        }

        return silo;
    }

    /// <summary>Lets Orleans carry <see cref="Chaos.ChaosStorageException"/> between silos and to clients, as it does Npgsql's exceptions.</summary>
    public static IServiceCollection AddChaosExceptionSerialization(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.Configure<ExceptionSerializationOptions>(o => o.SupportedNamespacePrefixes.Add(typeof(Chaos.ChaosStorageException).Namespace!));
        return services;
    }

    private static IGrainStorage Create(ServiceDescriptor descriptor, IServiceProvider services, object? key) =>
        descriptor.KeyedImplementationFactory is { } factory ? (IGrainStorage)factory(services, key)
        : descriptor.KeyedImplementationInstance is { } instance ? (IGrainStorage)instance
        : (IGrainStorage)ActivatorUtilities.CreateInstance(services, descriptor.KeyedImplementationType!);
}
