using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>Reads a held row at once, then answers when the test says so; fails the writes the test names.</summary>
internal sealed class FaultyRows(IGrainStorage inner) : IGrainStorage
{
    private static readonly ConcurrentDictionary<GrainId, ConcurrentQueue<Gate>> Gates = new();
    private static readonly ConcurrentDictionary<GrainId, bool> FailingWrites = new();

    /// <summary>Stores the silo's ledger in an in-memory store of its own, behind this class's faults.</summary>
    public static void AddTo(ISiloBuilder siloBuilder)
    {
        siloBuilder.AddInMemoryLedgerStorage();
        siloBuilder.Services.AddKeyedSingleton<IGrainStorage>(
            StorageNames.Ledger,
            (sp, _) => new FaultyRows(new InMemoryGrainStorage(sp.GetRequiredService<InMemoryLedgerStore>(), sp.GetRequiredService<Serializer>())));
    }

    public static void FailNextWrite(GrainId grainId) => FailingWrites[grainId] = true;

    public static Gate Hold(string transferId)
    {
        var gate = new Gate();
        Gates.GetOrAdd(LedgerGrains.TransferRowId(transferId), _ => new ConcurrentQueue<Gate>()).Enqueue(gate);
        return gate;
    }

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await inner.ReadStateAsync(stateName, grainId, grainState);
        if (stateName == TransferState.StateName && Gates.TryGetValue(grainId, out var gates) && gates.TryDequeue(out var gate))
        {
            gate.Read.SetResult();
            await gate.Answer.Task;
        }
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        FailingWrites.TryRemove(grainId, out _)
            ? Task.FromException(new InvalidOperationException($"Injected: the write of {grainId} failed."))
            : inner.WriteStateAsync(stateName, grainId, grainState);

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);
}

internal sealed class Gate
{
    public TaskCompletionSource Read { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
