using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// A silo drives a bounded number of movements at once, queues a bounded number more, oldest first,
/// and refuses the rest before recording anything. One silo, one place and one queue slot.
/// </summary>
public sealed class AdmissionTests : OneSiloCluster<AdmissionTests.SiloConfigurator>
{
    [Fact]
    public async Task A_silo_at_capacity_queues_then_refuses_and_a_refused_transfer_leaves_no_trace()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("admission"), 2, 1_000);
        var admission = ((InProcessSiloHandle)Cluster.Primary!).SiloHost.Services.GetRequiredService<TransferAdmission>();
        var first = new TransferRequest(Ledger.NewId("first"), ids[0], ids[1], 100, "USD");
        var queued = new TransferRequest(Ledger.NewId("queued"), ids[0], ids[1], 200, "USD");
        var refused = new TransferRequest(Ledger.NewId("refused"), ids[1], ids[0], 50, "USD");

        // The first holds the only place: its shard's read of its key's row does not answer yet.
        var gate = FaultyRows.Hold(first.TransferId);
        var running = ledger.Execute(first);
        await gate.Read.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var waiting = ledger.Execute(queued);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (admission.Queued < 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(1, admission.Queued);
        await Assert.ThrowsAsync<LedgerOverloadedException>(() => ledger.Execute(refused));
        Assert.False(waiting.IsCompleted);

        gate.Answer.SetResult();
        Assert.Equal(TransferStatus.Committed, (await running).Status);
        Assert.Equal(TransferStatus.Committed, (await waiting).Status);
        Assert.Equal([700L, 1_300L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));

        // Nothing was recorded under the refused key: sent again, it is new, and applies once.
        var retried = await ledger.Execute(refused);
        Assert.Equal((TransferStatus.Committed, false), (retried.Status, retried.Replayed));
        Assert.Equal([750L, 1_250L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        Assert.Equal(0, admission.Queued);
    }

    /// <summary>
    /// One call for many movements (a batch's items) admits each on its own: with the silo's one
    /// place held and its one queue slot taken, the items after them are refused alone, in order,
    /// and leave no trace, while the first two commit once the place frees.
    /// </summary>
    [Fact]
    public async Task The_items_of_one_call_are_admitted_one_by_one_and_a_refused_item_fails_alone()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("many"), 2, 1_000);
        var admission = ((InProcessSiloHandle)Cluster.Primary!).SiloHost.Services.GetRequiredService<TransferAdmission>();
        var requests = new[] { 100L, 200, 300, 400 }.Select(amount => new TransferRequest(Ledger.NewId($"many{amount}"), ids[0], ids[1], amount, "USD")).ToArray();
        var gate = FaultyRows.Hold(requests[0].TransferId);

        var call = Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0).ExecuteMany(requests);
        await gate.Read.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (admission.Queued < 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.False(call.IsCompleted);
        gate.Answer.SetResult();
        var outcomes = await call;

        Assert.Equal(
            [(TransferStatus.Committed, BatchItemFailure.None), (TransferStatus.Committed, BatchItemFailure.None), (default(TransferStatus?), BatchItemFailure.Overloaded), (default(TransferStatus?), BatchItemFailure.Overloaded)],
            outcomes.Select(o => (o.Result?.Status, o.Failure)));
        Assert.Equal(requests.Select(r => r.TransferId).Take(2), outcomes.Take(2).Select(o => o.Result!.TransferId));
        Assert.Equal([700L, 1_300L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));

        // The refused items were not recorded: sent again (two at a time, what the silo admits), the
        // first two replay and the others apply once.
        var coordinator = Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0);
        var again = (await coordinator.ExecuteMany(requests[..2])).Concat(await coordinator.ExecuteMany(requests[2..]));
        Assert.Equal(
            [(TransferStatus.Committed, true), (TransferStatus.Committed, true), (TransferStatus.Committed, false), (TransferStatus.Committed, false)],
            again.Select(o => (o.Result!.Status, o.Result.Replayed)));
        Assert.Equal([0L, 2_000L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    public sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            siloBuilder.Services.Configure<TransferOptions>(options =>
            {
                options.MaxConcurrentTransfers = 1;
                options.MaxQueuedTransfers = 1;
            });
            FaultyRows.AddTo(siloBuilder);
        }
    }
}
