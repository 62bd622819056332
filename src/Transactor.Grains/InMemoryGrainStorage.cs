using System.Collections.Concurrent;
using System.Globalization;
using Orleans.Serialization;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>
/// A process-wide in-memory store for grain state: what the embedded ledger, the tests and the
/// benchmarks use instead of a database. Silos of one process that share an instance see one
/// store, which outlives any of them, as a database would. Not durable across processes.
/// </summary>
public sealed class InMemoryLedgerStore
{
    internal ConcurrentDictionary<(string StateName, GrainId GrainId), StoredState> Rows { get; } = new();

    /// <summary>Number of grain states held.</summary>
    public int Count => Rows.Count;

    internal sealed record StoredState(byte[] Data, long Version);
}

/// <summary>
/// <see cref="IGrainStorage"/> over an <see cref="InMemoryLedgerStore"/>, with optimistic concurrency
/// on an etag like the database providers. State is stored serialized, so no grain shares an object with the store.
/// </summary>
public sealed class InMemoryGrainStorage(InMemoryLedgerStore store, Serializer serializer) : IGrainStorage
{
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        if (store.Rows.TryGetValue((stateName, grainId), out var row))
        {
            grainState.State = serializer.Deserialize<T>(row.Data);
            grainState.ETag = row.Version.ToString(CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        else
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
        }

        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        var key = (stateName, grainId);
        var data = serializer.SerializeToArray(grainState.State);
        var expected = grainState.ETag;
        long version;
        if (expected is null)
        {
            version = 1;
            if (!store.Rows.TryAdd(key, new InMemoryLedgerStore.StoredState(data, version)))
            {
                throw Inconsistent(stateName, grainId, expected, store.Rows.TryGetValue(key, out var now) ? now.Version : null);
            }
        }
        else
        {
            if (!store.Rows.TryGetValue(key, out var current) || current.Version.ToString(CultureInfo.InvariantCulture) != expected)
            {
                throw Inconsistent(stateName, grainId, expected, current?.Version);
            }

            version = current.Version + 1;
            if (!store.Rows.TryUpdate(key, new InMemoryLedgerStore.StoredState(data, version), current))
            {
                throw Inconsistent(stateName, grainId, expected, store.Rows.TryGetValue(key, out var now) ? now.Version : null);
            }
        }

        grainState.ETag = version.ToString(CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        store.Rows.TryRemove((stateName, grainId), out _);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
        return Task.CompletedTask;
    }

    private static InconsistentStateException Inconsistent(string stateName, GrainId grainId, string? expected, long? actual) =>
        new($"State '{stateName}' of {grainId}: expected version {expected ?? "none"}, store holds {actual?.ToString(CultureInfo.InvariantCulture) ?? "none"}.",
            actual?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
            expected ?? string.Empty);
}
