using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// A database answers a read with the row as it was when the read ran, and the answer can arrive
/// after the movement has ended. The in-memory store answers at once, so this class gives one
/// silo a store whose answers for chosen rows wait for the test.
/// </summary>
public sealed class SlowRowReadTests : IAsyncLifetime
{
    private static readonly InMemoryLedgerStore Store = new();
    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task A_retry_whose_read_of_the_row_predates_the_outcome_does_not_apply_the_movement_again()
    {
        var ledger = new Ledger(_cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("slow-read"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var shard = _cluster.Client.GetRecoveryShard(request.TransferId);
        // Both first reads of the key's row run at once and find no row; their answers are held.
        var first = GatedRows.Hold(request.TransferId);
        var second = GatedRows.Hold(request.TransferId);

        var original = ledger.Coordinator.Execute(request);
        await first.Read.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var retry = shard.Begin(request);
        await second.Read.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // The original lists the key, moves the money and completes, while the retry's answer waits.
        first.Answer.SetResult();
        Assert.Equal(TransferStatus.Committed, (await original).Status);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((await shard.List(100)).Contains(request.TransferId) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        // Then the retry learns that the row held nothing when it was read.
        second.Answer.SetResult();
        var ticket = await retry;

        Assert.True(ticket is { Completed: true, Lease: null }, $"a retry after the end must get the outcome, not a lease: {ticket}");
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddTransactor();
            siloBuilder.AddInMemoryLedgerStorage(store: Store);
            siloBuilder.Services.AddKeyedSingleton<IGrainStorage>(
                StorageNames.Ledger,
                (sp, _) => new GatedRows(new InMemoryGrainStorage(sp.GetRequiredService<InMemoryLedgerStore>(), sp.GetRequiredService<Serializer>())));
            siloBuilder.UseInMemoryReminderService();
        }
    }

    /// <summary>Reads a held row at once, then answers when the test says so.</summary>
    private sealed class GatedRows(IGrainStorage inner) : IGrainStorage
    {
        private static readonly ConcurrentDictionary<GrainId, ConcurrentQueue<Gate>> Gates = new();

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

        public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.WriteStateAsync(stateName, grainId, grainState);

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);
    }

    private sealed class Gate
    {
        public TaskCompletionSource Read { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
