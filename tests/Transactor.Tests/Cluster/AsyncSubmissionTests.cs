using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// <c>Prefer: respond-async</c>'s grain call (<see cref="ITransferCoordinatorGrain.Submit"/>) on a
/// cluster of its own, because the test kills a silo: the answer comes once the movement is recorded,
/// and a movement whose driver's silo dies right after the answer still ends, once.
/// </summary>
public sealed class AsyncSubmissionTests : OneSiloCluster<AsyncSubmissionTests.Configurator>
{
    private static readonly InMemoryLedgerStore Store = new();
    private static readonly TestTransferFaults Faults = new();

    [Fact]
    public async Task A_movement_whose_silo_is_killed_right_after_its_202_still_ends_once()
    {
        // Three silos: the primary (which holds the test cluster's membership) stays up.
        await Cluster.StartAdditionalSiloAsync();
        await Cluster.StartAdditionalSiloAsync();
        await Cluster.WaitForLivenessToStabilizeAsync();
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("async"), 2, 10_000);
        var victim = Cluster.SecondarySilos[0];
        var onVictim = Cluster.GetSiloServiceProvider(victim.SiloAddress).GetRequiredService<IGrainFactory>().GetCoordinator();

        var id = Ledger.NewId("async-kill");
        var request = new TransferRequest(id, ids[0], ids[1], 2_500, "USD");
        // The victim's background driver stops dead right after the record, as if the silo died then.
        Faults.Arm(id, TransferStep.AfterBegin);
        var accepted = await onVictim.Submit(request);
        Assert.Equal(TransferStatus.Pending, accepted.Status);
        Assert.False(accepted.Replayed);
        await Cluster.KillSiloAsync(victim);

        var result = await WaitForEnd(id, TimeSpan.FromSeconds(60));
        Assert.True(Faults.Fired(id), "the background driver did not reach the armed step");
        Assert.Equal(TransferStatus.Committed, result.Status);
        await ledger.WaitUntilQuiet(ids, TimeSpan.FromSeconds(30));
        var snapshots = await ledger.Snapshots(ids);
        Assert.Equal(7_500, snapshots[0].AvailableMinor);
        Assert.Equal(12_500, snapshots[1].AvailableMinor);

        // The same key again, in either mode: the one outcome, nothing moves again.
        var again = await Cluster.Client.GetCoordinator().Submit(request);
        Assert.Equal(TransferStatus.Committed, again.Status);
        Assert.True(again.Replayed);
        var reused = await Cluster.Client.GetCoordinator().Submit(request with { AmountMinor = 1 });
        Assert.Equal(RejectionReason.IdempotencyKeyReused, reused.Reason);
        await ledger.AssertBalanced(ids, 20_000);
    }

    [Fact]
    public async Task Submit_answers_pending_and_the_movement_ends_in_the_background()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("async"), 2, 10_000);
        var id = Ledger.NewId("async-bg");
        var accepted = await Cluster.Client.GetCoordinator().Submit(new TransferRequest(id, ids[0], ids[1], 20_000, "USD"));
        Assert.Equal(TransferStatus.Pending, accepted.Status);
        var result = await WaitForEnd(id, TimeSpan.FromSeconds(10));
        Assert.Equal(RejectionReason.InsufficientFunds, result.Reason);

        // Invalid requests are answered at once, as by Execute: nothing is recorded.
        var same = await Cluster.Client.GetCoordinator().Submit(new TransferRequest(Ledger.NewId("async-same"), ids[0], ids[0], 1, "USD"));
        Assert.Equal(RejectionReason.SameAccount, same.Reason);
        await ledger.AssertBalanced(ids, 20_000);
    }

    private async Task<TransferResult> WaitForEnd(string id, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var result = await Cluster.Client.GetTransferResult(id);
            Assert.NotNull(result);
            if (result.Status != TransferStatus.Pending)
            {
                return result;
            }

            Assert.True(DateTime.UtcNow < deadline, $"transfer {id} still pending after {timeout}");
            await Task.Delay(100);
        }
    }

    public sealed class Configurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(Faults);
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            siloBuilder.AddInMemoryLedgerStorage(store: Store);
        }
    }
}
