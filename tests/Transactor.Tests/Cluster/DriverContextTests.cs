using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// A driver names its silo to the recovery shard on the calls that hand it a lease (Begin, Claim),
/// so that a lease whose holder's silo has died is free before its time (liveness, issue #23). No
/// other call of the movement carries it: a request context entry is copied into every message the
/// driver sends after it is set, which cost 5.7 KiB of allocation and about a tenth of the rate per
/// transfer in memory while it was set for the whole drive (docs/benchmarks.md).
/// </summary>
public sealed class DriverContextTests : OneSiloCluster<DriverContextTests.SiloConfigurator>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Only_the_shard_calls_that_hand_out_a_lease_name_the_drivers_silo()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("driver-context"), 2, 1_000);
        var executed = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var submitted = new TransferRequest(Ledger.NewId("t"), ids[1], ids[0], 40, "USD");

        Assert.Equal(TransferStatus.Committed, (await ledger.Coordinator.Execute(executed)).Status);
        // Asynchronous submission: recorded now, driven in the background.
        await ledger.Coordinator.Submit(submitted);
        Assert.Equal(TransferStatus.Committed, (await ledger.WaitForRecordedEnd(submitted.TransferId, Timeout)).Status);
        // Recovery of an ended movement claims it and applies its decision again (one-way call):
        // wait for those commits too, so that a context set for the whole recovery would show.
        await ledger.Coordinator.Recover(executed.TransferId);
        await Until(() => Count(executed.TransferId, "Claim") >= 1 && Count(executed.TransferId, "CommitWithMetadata") >= 4);
        await Until(() => Count(submitted.TransferId, "Complete") >= 1);

        var silo = Cluster.Primary!.SiloAddress;
        foreach (var transferId in new[] { executed.TransferId, submitted.TransferId })
        {
            var calls = DriverContextRecorder.Calls.Where(c => c.TransferId == transferId).ToList();
            Assert.Contains(calls, c => c.Method == "Prepare");
            Assert.Contains(calls, c => c.Method == "Decide");
            var leaseCalls = calls.Where(c => c.Method is "Begin" or "Claim").ToList();
            Assert.Contains(leaseCalls, c => c.Method == "Begin");
            Assert.All(leaseCalls, c => Assert.Equal(silo, c.Driver));
            var others = calls.Where(c => c.Method is not ("Begin" or "Claim") && c.Driver is not null).Select(c => c.Method).ToList();
            Assert.True(others.Count == 0, $"calls that carried the driver's silo: {string.Join(", ", others)}");
        }

        Assert.Contains(DriverContextRecorder.Calls, c => c.TransferId == executed.TransferId && c.Method == "Claim");
    }

    private static int Count(string transferId, string method) => DriverContextRecorder.Calls.Count(c => c.TransferId == transferId && c.Method == method);

    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the calls expected were not all made");
            await Task.Delay(20);
        }
    }

    public sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(ClusterFixture.Faults);
            // Sweeps a minute apart: no recovery claims a movement of this test unless the test asks.
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder, sweepPeriod: TimeSpan.FromMinutes(1));
            siloBuilder.UseInMemoryReminderService();
            siloBuilder.AddInMemoryLedgerStorage(store: new InMemoryLedgerStore());
            siloBuilder.AddOutgoingGrainCallFilter<DriverContextRecorder>();
        }
    }

    /// <summary>Records every grain call a silo sends about a movement, with the driver's silo its request context named.</summary>
    private sealed class DriverContextRecorder : IOutgoingGrainCallFilter
    {
        public static ConcurrentQueue<(string Method, string TransferId, SiloAddress? Driver)> Calls { get; } = new();

        public Task Invoke(IOutgoingGrainCallContext context)
        {
            var transferId = context.Request.GetArgumentCount() > 0
                ? context.Request.GetArgument(0) switch
                {
                    string id => id,
                    TransferRequest request => request.TransferId,
                    PrepareRequest prepare => prepare.TransferId,
                    _ => null,
                }
                : null;
            if (transferId is not null)
            {
                Calls.Enqueue((context.MethodName, transferId, RequestContext.Get(TransferCoordinatorGrain.DriverSiloKey) as SiloAddress));
            }

            return context.Invoke();
        }
    }
}
