using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// <see cref="ITransferCoordinatorGrain.ExecuteMany"/>, the call a batch's items go in: an item that
/// fails or outlasts the call's deadline fails alone, its outcome learned by a retry of its id, and
/// every item is applied once. One silo, a 2-s deadline.
/// </summary>
public sealed class BatchCallTests : OneSiloCluster<BatchCallTests.SiloConfigurator>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task An_item_still_running_at_the_deadline_is_answered_unavailable_and_still_ends_once()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("late"), 2, 1_000);
        var slow = new TransferRequest(Ledger.NewId("slow"), ids[0], ids[1], 100, "USD");
        var quick = new TransferRequest(Ledger.NewId("quick"), ids[0], ids[1], 20, "USD");
        var gate = FaultyRows.Hold(slow.TransferId);

        var outcomes = await Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0).ExecuteMany([slow, quick]);

        // The call answered at its deadline while the slow item waited: that item has no outcome
        // yet, the other has committed.
        Assert.True(gate.Read.Task.IsCompleted);
        Assert.Equal(
            [(default(TransferStatus?), BatchItemFailure.Unavailable), (TransferStatus.Committed, BatchItemFailure.None)],
            outcomes.Select(o => (o.Result?.Status, o.Failure)));
        Assert.Equal([980L, 1_020L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));

        // Let go, the slow item ends on its own, and its retry gets that one outcome, applied once.
        gate.Answer.SetResult();
        var ended = await ledger.WaitForRecordedEnd(slow.TransferId, TimeSpan.FromSeconds(30));
        Assert.Equal(TransferStatus.Committed, ended.Status);
        var retried = await Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0).ExecuteMany([slow, quick]);
        Assert.Equal([(TransferStatus.Committed, true), (TransferStatus.Committed, true)], retried.Select(o => (o.Result!.Status, o.Result.Replayed)));
        Assert.Equal([880L, 1_120L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    [Fact]
    public async Task An_item_whose_account_write_fails_fails_alone_and_a_retry_applies_it_once()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("fails"), 3, 1_000);
        var failing = new TransferRequest(Ledger.NewId("failing"), ids[0], ids[1], 100, "USD");
        var other = new TransferRequest(Ledger.NewId("other"), ids[2], ids[1], 30, "USD");
        FaultyRows.FailNextWrite(Cluster.Client.GetAccount(ids[0]).GetGrainId());

        var outcomes = await Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0).ExecuteMany([failing, other]);

        // The injected failure is an InvalidOperationException: what a single request answers 500
        // internal_error for. The other item is not touched by it.
        Assert.Equal(
            [(default(TransferStatus?), BatchItemFailure.Internal), (TransferStatus.Committed, BatchItemFailure.None)],
            outcomes.Select(o => (o.Result?.Status, o.Failure)));
        Assert.Contains("Injected", outcomes[0].Message, StringComparison.Ordinal);

        // Recorded before it failed: its shard's recovery or this retry drives it to one end.
        var retried = await Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0).ExecuteMany([failing]);
        Assert.Equal(TransferStatus.Committed, retried[0].Result!.Status);
        Assert.Equal([900L, 1_130L, 970L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    [Fact]
    public async Task A_call_of_more_items_than_it_may_carry_is_refused_whole_and_changes_nothing()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("many"), 2, 1_000);
        var requests = Enumerable.Range(0, BatchItemOutcome.MaxItems + 1).Select(i => new TransferRequest(Ledger.NewId($"m{i}"), ids[0], ids[1], 1, "USD")).ToArray();

        await Assert.ThrowsAsync<ArgumentException>(() => Cluster.Client.GetGrain<ITransferCoordinatorGrain>(0).ExecuteMany(requests));

        Assert.Equal([1_000L, 1_000L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    public sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            siloBuilder.Services.Configure<TransferOptions>(options => options.BatchItemDeadline = Deadline);
            FaultyRows.AddTo(siloBuilder);
        }
    }
}
