using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using Transactor.Grains;
using Transactor.Tests.Cluster;
using Xunit.Abstractions;

namespace Transactor.Tests.Linked;

/// <summary>
/// A silo is killed in the middle of a linked transfer: the silo whose coordinator is driving it,
/// while that coordinator waits for the prepare of the third of five accounts (two have prepared,
/// their money reserved, and the rest have not been asked; the held prepare fails with its silo, as
/// a call of a silo that dies does, and is never sent). The transfer must end all or nothing,
/// once, through recovery, with every account's balance explained and the books balanced: one
/// transfer that every account can afford (committed) and one whose last account cannot (rejected,
/// its earlier reservations released).
/// </summary>
public sealed class LinkedSiloKillTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long InitialMinor = 1_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static readonly InMemoryLedgerStore Store = new();

    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<Configurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        PrepareGate.Clear();
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task Killing_the_coordinators_silo_mid_prepare_ends_each_linked_transfer_all_or_nothing()
    {
        var ledger = new Ledger(_cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("lkill"), 5, InitialMinor);
        var sent = new List<TransferRequest>();

        // Both at once, held at the same prepare on the same silo, killed together. Committed: every
        // account affords its net. Rejected: the last account (ids[4]) cannot, and refuses after the kill.
        var (committing, rejecting, killed) = await KillMidway(ids, sent);
        output.WriteLine($"killed {killed} while {committing.TransferId} and {rejecting.TransferId} waited for the prepare of {ids[2]}");

        var committed = await ledger.WaitForRecordedEnd(committing.TransferId, Timeout);
        var rejected = await ledger.WaitForRecordedEnd(rejecting.TransferId, Timeout);
        await ledger.WaitUntilQuiet(ids, Timeout);
        Assert.True(committed.Status == TransferStatus.Committed, $"{committing.TransferId} after the kill of {killed}: {committed.Status} {committed.Reason} leg {committed.FailedLeg}");
        Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds, 3), (rejected.Status, rejected.Reason, rejected.FailedLeg));
        await AssertExplained(ledger, ids, sent);
        await ledger.AssertBalanced(ids, ids.Length * InitialMinor);
    }

    /// <summary>
    /// Sends a linked transfer that commits and one that is rejected, together, from a secondary
    /// silo (the primary keeps the test cluster's membership and reminders), so that both
    /// coordinators run there (a stateless worker is activated on its caller's silo), holds both at
    /// the prepare of ids[2], and kills that silo. A pair that is not held there together is let
    /// go, ends as usual, and another is sent (a few at most: each commit moves 50 out of ids[0]).
    /// </summary>
    private async Task<(TransferRequest Committing, TransferRequest Rejecting, SiloAddress Killed)> KillMidway(string[] ids, List<TransferRequest> sent)
    {
        var sender = Assert.IsType<InProcessSiloHandle>(_cluster.SecondarySilos[0]);
        var grains = sender.SiloHost.Services.GetRequiredService<IGrainFactory>();
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var committing = Request(ids, 10);
            var rejecting = Request(ids, 10 * InitialMinor);
            sent.AddRange([committing, rejecting]);
            var gates = new[] { PrepareGate.Arm(committing.TransferId, ids[2]), PrepareGate.Arm(rejecting.TransferId, ids[2]) };
            var executions = new[] { committing, rejecting }.Select(r => grains.GetCoordinator().Execute(r)).ToArray();
            var reached = Task.WhenAll(gates.Select(g => g.Reached.Task));
            var first = await Task.WhenAny(reached, Task.WhenAny(executions)).WaitAsync(Timeout);
            var victim = first == reached
                ? _cluster.SecondarySilos.FirstOrDefault(s => s.SiloAddress.Equals(gates[0].Silo) && s.SiloAddress.Equals(gates[1].Silo))
                : null;
            if (victim is null)
            {
                // Driven on different silos, or on the primary; or one answered before its prepare of
                // ids[2] was sent (on a loaded machine its lease can run out while it prepares, and it
                // answers pending for recovery to finish). Let the pair go: the books check covers it.
                foreach (var gate in gates)
                {
                    gate.Release();
                }

                foreach (var execution in executions)
                {
                    var ended = await execution.WaitAsync(Timeout);
                    output.WriteLine($"let {ended.Request.TransferId} go: {ended.Status} {ended.Reason}, gate reached {first == reached}");
                }

                continue;
            }

            // The held prepares die with their silo: never sent, and their coordinators hear they failed.
            // (A call held past the kill would keep TestingHost's stop of that silo waiting.)
            var killing = _cluster.KillSiloAsync(victim);
            foreach (var gate in gates)
            {
                gate.Fail();
            }

            await killing;
            // Their caller hears a failure, or nothing for a while: recovery finishes the transfers either way.
            foreach (var execution in executions)
            {
                _ = execution.ContinueWith(t => t.Exception, TaskScheduler.Default);
            }

            return (committing, rejecting, victim.SiloAddress);
        }

        throw new Xunit.Sdk.XunitException("10 pairs of linked transfers in a row were not held together on one secondary silo");
    }

    /// <summary>
    /// Five accounts, in ascending order; money goes round, and ids[4] is debited by leg 3:
    /// 0→1 100, 2→0 50, 1→3 30, 4→2 <paramref name="lastDebitMinor"/>.
    /// </summary>
    private static TransferRequest Request(string[] ids, long lastDebitMinor) => TransferRequest.Linked(Ledger.NewId("lkt"),
    [
        new TransferLeg(ids[0], ids[1], 100, "USD"),
        new TransferLeg(ids[2], ids[0], 50, "USD"),
        new TransferLeg(ids[1], ids[3], 30, "USD"),
        new TransferLeg(ids[4], ids[2], lastDebitMinor, "USD"),
    ]);

    /// <summary>Every account's balance is its start plus the nets of the linked transfers recorded as committed, each once.</summary>
    private static async Task AssertExplained(Ledger ledger, string[] ids, List<TransferRequest> sent)
    {
        var expected = ids.ToDictionary(id => id, _ => InitialMinor, StringComparer.Ordinal);
        foreach (var request in sent)
        {
            var record = await ledger.WaitForRecordedEnd(request.TransferId, Timeout);
            if (record.Status != TransferStatus.Committed)
            {
                continue;
            }

            foreach (var leg in record.Request.Legs!.Items)
            {
                expected[leg.DebitAccountId] -= leg.AmountMinor;
                expected[leg.CreditAccountId] += leg.AmountMinor;
            }
        }

        foreach (var s in await ledger.Snapshots(ids))
        {
            Assert.True(expected[s.AccountId] == s.AvailableMinor, $"{s.AccountId} holds {s.AvailableMinor}; its committed legs say {expected[s.AccountId]}");
        }
    }

    private sealed class Configurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(new TestTransferFaults());
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            siloBuilder.AddInMemoryLedgerStorage(store: Store);
            siloBuilder.AddOutgoingGrainCallFilter<PrepareGate>();
        }
    }

    /// <summary>Holds the first prepare of one account for one transfer id, and notes the silo of the coordinator that sent it.</summary>
    private sealed class PrepareGate(ILocalSiloDetails silo) : IOutgoingGrainCallFilter
    {
        private static readonly ConcurrentDictionary<(string TransferId, string AccountId), Held> Armed = new();

        /// <summary>Every gate armed, reached or not: a reached gate leaves <see cref="Armed"/>, and one the test never released would keep its silo's stop waiting.</summary>
        private static readonly ConcurrentQueue<Held> Every = new();

        public static Held Arm(string transferId, string accountId)
        {
            var held = new Held();
            Every.Enqueue(held);
            return Armed[(transferId, accountId)] = held;
        }

        public static void Clear()
        {
            while (Every.TryDequeue(out var held))
            {
                held.Release();
            }

            Armed.Clear();
        }

        public async Task Invoke(IOutgoingGrainCallContext context)
        {
            if (context.Request.GetArgumentCount() == 1 && context.Request.GetArgument(0) is PrepareRequest prepare
                && context.TargetId.Key.ToString() is { } key
                && Armed.TryRemove((prepare.TransferId, LedgerGrains.AccountIdOf(key)), out var held))
            {
                held.Silo = silo.SiloAddress;
                held.Reached.TrySetResult();
                if (!await held.Released.Task)
                {
                    throw new SiloUnavailableException($"Injected: the silo of the coordinator of '{prepare.TransferId}' was killed before this prepare was sent.");
                }
            }

            await context.Invoke();
        }
    }

    private sealed class Held
    {
        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>True: the call goes on; false: it fails, as a call of a silo that died.</summary>
        public TaskCompletionSource<bool> Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public SiloAddress? Silo { get; set; }

        public void Release() => Released.TrySetResult(true);

        public void Fail() => Released.TrySetResult(false);
    }
}
