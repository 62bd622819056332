using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// Reads a held row at once, then answers when the test says so; fails the writes the test names,
/// before they are stored or (a lost answer) after.
/// </summary>
internal sealed class FaultyRows(IGrainStorage inner) : IGrainStorage
{
    private static readonly ConcurrentDictionary<GrainId, ConcurrentQueue<Gate>> Gates = new();
    private static readonly ConcurrentDictionary<GrainId, bool> FailingWrites = new();
    private static readonly ConcurrentDictionary<GrainId, bool> LostAnswers = new();

    /// <summary>Stores the silo's ledger in an in-memory store of its own, behind this class's faults.</summary>
    public static void AddTo(ISiloBuilder siloBuilder)
    {
        siloBuilder.AddInMemoryLedgerStorage();
        siloBuilder.Services.AddKeyedSingleton<IGrainStorage>(
            StorageNames.Ledger,
            (sp, _) => new FaultyRows(new InMemoryGrainStorage(sp.GetRequiredService<InMemoryLedgerStore>(), sp.GetRequiredService<Serializer>())));
    }

    public static void FailNextWrite(GrainId grainId) => FailingWrites[grainId] = true;

    /// <summary>The next write of the row is stored, and then fails as if its answer were lost: the writer keeps its old etag.</summary>
    public static void LoseNextWriteAnswer(GrainId grainId) => LostAnswers[grainId] = true;

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

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (FailingWrites.TryRemove(grainId, out _))
        {
            throw new InvalidOperationException($"Injected: the write of {grainId} failed.");
        }

        var (etag, exists) = (grainState.ETag, grainState.RecordExists);
        await inner.WriteStateAsync(stateName, grainId, grainState);
        if (LostAnswers.TryRemove(grainId, out _))
        {
            (grainState.ETag, grainState.RecordExists) = (etag, exists);
            throw new TimeoutException($"Injected: the write of {grainId} was stored and its answer lost.");
        }
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);
}

internal sealed class Gate
{
    public TaskCompletionSource Read { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
