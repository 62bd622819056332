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
/// driver sends after it is set, which cost about 5.6 KiB of allocation and a fifth of the rate per
/// transfer in memory while it was set for the whole drive (docs/benchmarks.md).
/// </summary>
public sealed class DriverContextTests : OneSiloCluster<DriverContextTests.SiloConfigurator>
{
    [Fact]
    public async Task Only_the_shard_calls_that_hand_out_a_lease_name_the_drivers_silo()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("driver-context"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");

        Assert.Equal(TransferStatus.Committed, (await ledger.Coordinator.Execute(request)).Status);
        // Recovery of an ended movement claims it too (and finds it ended); the call is one-way.
        await ledger.Coordinator.Recover(request.TransferId);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!DriverContextRecorder.Calls.Any(c => c.TransferId == request.TransferId && c.Method == "Claim"))
        {
            Assert.True(DateTime.UtcNow < deadline, "recovery never claimed the movement");
            await Task.Delay(20);
        }

        var silo = Cluster.Primary!.SiloAddress;
        var calls = DriverContextRecorder.Calls.Where(c => c.TransferId == request.TransferId).ToList();
        Assert.Contains(calls, c => c.Method == "Prepare");
        Assert.Contains(calls, c => c.Method == "Decide");
        Assert.Equal([silo], calls.Where(c => c.Method == "Begin").Select(c => c.Driver));
        Assert.Equal([silo], calls.Where(c => c.Method == "Claim").Select(c => c.Driver));
        var others = calls.Where(c => c.Method is not ("Begin" or "Claim") && c.Driver is not null).Select(c => c.Method).ToList();
        Assert.True(others.Count == 0, $"calls that carried the driver's silo: {string.Join(", ", others)}");
    }

    public sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(ClusterFixture.Faults);
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
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
