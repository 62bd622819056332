using System.Data.Common;
using Microsoft.Extensions.Logging;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>
/// The ledger's grain storage with injected failures: a read or a write fails at the configured
/// rate with <see cref="Chaos.ChaosStorageException"/> (a <see cref="DbException"/>, so that every
/// layer treats it as the database failing: the API answers 503 <c>storage_unavailable</c>). A failed
/// write stores nothing, as a database that refused it. Lifecycle participation (Orleans' ADO.NET
/// provider initialises through it) passes through to the wrapped storage.
/// </summary>
internal sealed partial class ChaosGrainStorage(IGrainStorage inner, ChaosOptions options, ChaosMonitor monitor, ILogger<ChaosGrainStorage> logger)
    : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>
{
    private readonly Random _random = new(HashCode.Combine(options.Seed ?? Environment.TickCount, "storage"));
    private readonly Lock _lock = new();

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        Fail(options.StorageReadFailureProbability, ChaosFaultKind.StorageRead, "read", grainId);
        return inner.ReadStateAsync(stateName, grainId, grainState);
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        Fail(options.StorageWriteFailureProbability, ChaosFaultKind.StorageWrite, "write", grainId);
        return inner.WriteStateAsync(stateName, grainId, grainState);
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        Fail(options.StorageWriteFailureProbability, ChaosFaultKind.StorageWrite, "clear", grainId);
        return inner.ClearStateAsync(stateName, grainId, grainState);
    }

    public void Participate(ISiloLifecycle observer) => (inner as ILifecycleParticipant<ISiloLifecycle>)?.Participate(observer);

    private void Fail(double probability, ChaosFaultKind kind, string operation, GrainId grainId)
    {
        if (probability <= 0 || !monitor.Armed())
        {
            return;
        }

        bool fail;
        lock (_lock)
        {
            fail = _random.NextDouble() < probability;
        }

        if (fail)
        {
            monitor.Injected(kind);
            LogFailed(logger, operation, grainId);
            throw new Chaos.ChaosStorageException($"Chaos: the storage {operation} of {grainId} failed.");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Chaos: failed the storage {Operation} of {GrainId}")]
    private static partial void LogFailed(ILogger logger, string operation, GrainId grainId);
}
