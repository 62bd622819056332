using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;

namespace Transactor.Tests.Cluster;

/// <summary>The ledger's events reach a client from every silo of the 3-silo cluster (grain observers, docs/events.md).</summary>
[Collection(ClusterTestGroup.Name)]
public sealed class LedgerEventsTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Movements_ended_on_each_of_three_silos_reach_one_subscribed_client()
    {
        using var receiver = new Receiver();
        var reference = fixture.Client.CreateObjectReference<ILedgerEventObserver>(receiver);
        try
        {
            await fixture.Client.Hub().Subscribe(reference);
            var ledger = new Ledger(fixture.Client);
            var account = (await ledger.OpenFunded(Ledger.NewId("events"), 1, 0)).Single();
            var hosts = fixture.Cluster.GetActiveSilos().ToArray();
            Assert.Equal(ClusterFixture.SiloCount, hosts.Length);

            // Movements sent through each silo's own grain factory, until the events of the movements
            // sent have come from every silo (coordinators are stateless workers: where one runs is
            // Orleans' choice). The first may end before every silo has read the subscription (2 s).
            var sent = new List<string>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            int Silos() => sent.Where(receiver.Movements.ContainsKey).Select(id => receiver.Movements[id].Silo).Distinct().Count();
            while (Silos() < ClusterFixture.SiloCount)
            {
                Assert.True(DateTime.UtcNow < deadline, $"events of {sent.Count(receiver.Movements.ContainsKey)} of {sent.Count} movements arrived, from {Silos()} silos");
                foreach (var host in hosts)
                {
                    var grains = fixture.Cluster.GetSiloServiceProvider(host.SiloAddress).GetRequiredService<IGrainFactory>();
                    var id = Ledger.NewId("ev");
                    sent.Add(id);
                    var result = await grains.GetCoordinator().Execute(TransferRequest.Deposit(id, account, 100));
                    Assert.Equal(TransferStatus.Committed, result.Status);
                }

                await Task.Delay(200);
            }

            // Once every silo knows the subscription, every movement's event arrives (none is lost on the way).
            var late = sent.Skip(sent.Count - ClusterFixture.SiloCount).ToArray();
            while (!late.All(receiver.Movements.ContainsKey))
            {
                Assert.True(DateTime.UtcNow < deadline, "the last movements' events did not arrive");
                await receiver.Arrived(TimeSpan.FromMilliseconds(200));
            }

            var one = receiver.Movements[late[0]].Movement;
            Assert.Equal(account, one.To);
            Assert.Equal(100, one.AmountMinor);
            Assert.Equal(TransferStatus.Committed, one.Status);
            Assert.NotNull(one.ToAvailableMinor);
            // Every silo also sends its load, with its admission limits.
            Assert.True(hosts.All(h => receiver.Loads.TryGetValue(h.SiloAddress.ToString(), out var load) && load.Places > 0 && load.QueueLimit > 0),
                $"loads from {receiver.Loads.Count} silos");
        }
        finally
        {
            await fixture.Client.Hub().Unsubscribe(reference);
            fixture.Client.DeleteObjectReference<ILedgerEventObserver>(reference);
        }
    }

    private sealed class Receiver : ILedgerEventObserver, IDisposable
    {
        private readonly SemaphoreSlim _arrived = new(0);

        public ConcurrentDictionary<string, (string Silo, MovementEvent Movement)> Movements { get; } = new(StringComparer.Ordinal);

        public ConcurrentDictionary<string, SiloLoad> Loads { get; } = new(StringComparer.Ordinal);

        public Task OnEvents(LedgerEventBatch batch)
        {
            Loads[batch.Silo] = batch.Load;
            foreach (var movement in batch.Movements)
            {
                Movements[movement.TransferId] = (batch.Silo, movement);
            }

            _arrived.Release();
            return Task.CompletedTask;
        }

        public Task<bool> Arrived(TimeSpan timeout) => _arrived.WaitAsync(timeout);

        public void Dispose() => _arrived.Dispose();
    }
}
