using System.Buffers;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Serialization;
using Orleans.TestingHost;
using Transactor.Api.Events;
using Transactor.Api.Metrics;
using Transactor.Api.Runs;
using Transactor.Domain;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// The windows a clock-based lease left open (issue #16), each reproduced deterministically: a late
/// answer, a late prepare, a second activation of an account or a shard, a decision not yet applied,
/// and a write that was stored while its writer heard it fail. Money must move once, or not at all.
/// </summary>
public sealed class FencingTests : OneSiloCluster<FencingTests.SiloConfigurator>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>A shard key outside <see cref="RecoveryShards.Count"/>, so that its stored list is this class's alone.</summary>
    private const long UnusedShard = 2_000 + RecoveryShards.Count;

    /// <summary>
    /// The driver that started the movement hears its lease 3 s late (the lease is 5 s), and its
    /// first prepare then reaches the account only after a successor has decided and applied the
    /// movement there. With leases measured from their answer, that prepare was accepted and the
    /// late driver applied the successor's decision to it: the debit was charged twice.
    /// </summary>
    [Fact]
    public async Task A_driver_that_heard_its_lease_late_cannot_apply_the_movement_a_second_time()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("late-lease"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var lateLease = HeldCalls.AfterAnswer("Begin", request.TransferId);
        var latePrepare = HeldCalls.Before("Prepare", request.TransferId);
        var successorsComplete = HeldCalls.Before("Complete", request.TransferId);

        var original = ledger.Coordinator.Execute(request);
        await lateLease.Reached.Task.WaitAsync(Timeout);
        // A late answer is a matter of time: the scenario needs the lease to be mostly gone when heard.
        await Task.Delay(TimeSpan.FromSeconds(3));
        lateLease.Release();
        await latePrepare.Reached.Task.WaitAsync(Timeout);

        // The lease runs out at the shard; recovery takes the next one and applies the movement.
        await successorsComplete.Reached.Task.WaitAsync(Timeout);
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        latePrepare.Release();
        var originalResult = await original;
        successorsComplete.Release();

        var ended = await ledger.WaitForRecordedEnd(request.TransferId, Timeout);
        await ledger.WaitUntilQuiet(ids, Timeout);
        Assert.Equal(TransferStatus.Committed, ended.Status);
        Assert.NotEqual(TransferStatus.Rejected, originalResult.Status);
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        await ledger.AssertBalanced(ids, 2_000);
    }

    /// <summary>
    /// A prepare from a driver whose lease was taken over reaches the debit account after the
    /// movement has ended: nobody will apply it, and nobody lists it. The account hands it to a
    /// coordinator, which finds the movement ended and releases the reservation.
    /// </summary>
    [Fact]
    public async Task A_prepare_that_arrives_after_its_movement_ended_is_released()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("stranded"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var latePrepare = HeldCalls.Before("Prepare", request.TransferId);

        var original = ledger.Coordinator.Execute(request);
        await latePrepare.Reached.Task.WaitAsync(Timeout);
        var ended = await ledger.WaitForRecordedEnd(request.TransferId, Timeout);
        Assert.Equal(TransferStatus.Committed, ended.Status);
        latePrepare.Release();
        var originalResult = await original;

        Assert.NotEqual(TransferStatus.Rejected, originalResult.Status);
        await ledger.WaitUntilQuiet(ids, Timeout);
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        await ledger.AssertBalanced(ids, 2_000);
    }

    /// <summary>
    /// Orleans' default directory can briefly run two activations of one account. If one stored a
    /// prepare and the commit reaches the other, the other must not answer from its memory that
    /// nothing is held: the movement would complete with the money left in incoming for ever.
    /// </summary>
    [Fact]
    public async Task An_account_checks_storage_before_it_answers_a_commit_of_a_movement_it_does_not_hold()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("two-activations"), 1, 1_000);
        var account = Cluster.Client.GetAccount(ids[0]);
        var transferId = Ledger.NewId("t");
        await account.GetSnapshot();

        // What the other activation stored when it prepared the credit.
        ReplaceRow<AccountState>(AccountGrain.StateName, account.GetGrainId(), state =>
        {
            state.IncomingMinor += 100;
            state.Pending[transferId] = new PendingEntry(EntrySide.Credit, 100, Epoch: 1);
            state.Version++;
            return state;
        });
        var answered = await account.Commit(transferId, decidedEpoch: 1);

        var stored = ReadRow<AccountState>(AccountGrain.StateName, account.GetGrainId());
        Assert.Equal((1_100L, 0L), (answered!.AvailableMinor, answered.IncomingMinor));
        Assert.Equal((1_100L, 0L, 0), (stored.AvailableMinor, stored.IncomingMinor, stored.Pending.Count));
    }

    /// <summary>
    /// Two activations of one recovery shard: the other stored a lease (epoch 2) on a movement this
    /// one lists. When this one's lease runs out it must not hand out another from memory: its
    /// write of the next epoch conflicts, it steps down, and the next activation continues from
    /// what storage holds, with an epoch after the other's.
    /// </summary>
    [Fact]
    public async Task A_shard_activation_whose_list_another_activation_changed_hands_out_no_lease()
    {
        var shard = Cluster.Client.GetGrain<IRecoveryShardGrain>(UnusedShard);
        var request = new TransferRequest(Ledger.NewId("t"), "acct-a", "acct-b", 10, "USD");
        var first = await shard.Begin(request);
        Assert.Equal(1, first.Epoch);

        var serializer = Cluster.Client.ServiceProvider.GetRequiredService<Serializer>();
        ReplaceRow<RecoveryShardState>("recovery", shard.GetGrainId(), list =>
        {
            var listings = new ArrayBufferWriter<byte>();
            foreach (var listing in list.ReadListings(serializer))
            {
                RecoveryShardState.Append(serializer, listing.TransferId == request.TransferId ? listing with { Epoch = 2 } : listing, listings);
            }

            return new RecoveryShardState { Listings = listings.WrittenMemory.ToArray() };
        });

        Exception? refused = null;
        DriveTicket? claimed = null;
        var deadline = DateTime.UtcNow + Timeout;
        while (claimed?.Lease is null)
        {
            Assert.True(DateTime.UtcNow < deadline, $"no lease on {request.TransferId} within {Timeout}");
            try
            {
                claimed = await shard.Claim(request.TransferId);
            }
            catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
            {
                refused ??= ex;
            }

            await Task.Delay(100);
        }

        Assert.True(refused is not null, "the activation that was behind storage handed out a lease");
        Assert.Equal(3, claimed.Epoch);
    }

    /// <summary>
    /// A coordinator stopped after the decision and before any account applied it. Until the
    /// accounts have applied it, a read of the key or a retry must not answer "committed".
    /// </summary>
    [Fact]
    public async Task A_decided_movement_that_no_account_has_applied_is_pending_to_its_clients()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("decided"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        ClusterFixture.Faults.Arm(request.TransferId, TransferStep.AfterDecide);
        await Assert.ThrowsAsync<InjectedFaultException>(() => ledger.Coordinator.Execute(request));

        var read = await Cluster.Client.GetTransferResult(request.TransferId);
        var retry = await ledger.Coordinator.Execute(request);

        Assert.Equal(TransferStatus.Pending, read!.Status);
        // The retry waits out the crashed driver's lease; by then recovery may have finished it.
        Assert.True(
            retry.Status == TransferStatus.Pending || retry is { Status: TransferStatus.Committed, Debit.AvailableMinor: 900, Credit.AvailableMinor: 1_100 },
            $"a retry answered {retry.Status} with balances {retry.Debit?.AvailableMinor}/{retry.Credit?.AvailableMinor}");
        Assert.Equal(TransferStatus.Committed, (await ledger.WaitForRecordedEnd(request.TransferId, Timeout)).Status);
        await ledger.WaitUntilQuiet(ids, Timeout);
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    /// <summary>
    /// A shard's list write is stored, but the shard hears it fail (a lost answer): its etag is now
    /// stale. The shard must not carry on from memory: the next movement on it is recorded at its
    /// first try (by an activation that read storage), and the one whose answer was lost is found
    /// listed and applied once.
    /// </summary>
    [Fact]
    public async Task After_a_list_write_whose_answer_was_lost_the_shard_continues_from_storage()
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("lost-answer"), 2, 1_000);
        var lost = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var shardOf = RecoveryShards.Of(lost.TransferId);
        var next = new TransferRequest(NewIdOnShard(shardOf), ids[0], ids[1], 10, "USD");
        var shard = Cluster.Client.GetRecoveryShard(lost.TransferId);
        await shard.List(1);

        FaultyRows.LoseNextWriteAnswer(shard.GetGrainId());
        await Assert.ThrowsAnyAsync<Exception>(() => ledger.Coordinator.Execute(lost));
        var nextResult = await ledger.Coordinator.Execute(next);
        Assert.Equal([lost.TransferId], await shard.List(10));
        var retried = await ledger.Coordinator.Execute(lost);

        Assert.Equal(TransferStatus.Committed, nextResult.Status);
        Assert.Equal((TransferStatus.Committed, true), (retried.Status, retried.Replayed));
        await ledger.WaitUntilQuiet(ids, Timeout);
        Assert.Equal([890L, 1_110L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
    }

    /// <summary>
    /// Every write of a movement (its listing, each account's prepare, the decision, each apply, the
    /// outcome's row) stored while its writer heard it fail: whatever the writer does next, the
    /// movement ends committed, applied once, and a retry of the key gets that outcome.
    /// </summary>
    [Theory]
    [InlineData("listing")]
    [InlineData("prepare")]
    [InlineData("decision")]
    [InlineData("apply")]
    [InlineData("outcome")]
    public async Task A_write_stored_while_its_writer_heard_it_fail_leaves_the_movement_applied_once(string write)
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId($"lost-{write}"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        var shard = Cluster.Client.GetRecoveryShard(request.TransferId);
        await shard.List(1);
        var debit = Cluster.Client.GetAccount(ids[0]).GetGrainId();
        // The write to lose is armed when the driver reaches the call before it, so that it is that write.
        var (before, row) = write switch
        {
            "listing" => (null, shard.GetGrainId()),
            "prepare" => (null, debit),
            "decision" => ("Decide", shard.GetGrainId()),
            "apply" => ("Decide", debit),
            _ => ("Complete", LedgerGrains.TransferRowId(request.TransferId)),
        };
        var held = before is null ? null : HeldCalls.Before(before, request.TransferId);
        if (held is null)
        {
            FaultyRows.LoseNextWriteAnswer(row);
        }

        var original = ledger.Coordinator.Execute(request);
        if (held is not null)
        {
            await held.Reached.Task.WaitAsync(Timeout);
            FaultyRows.LoseNextWriteAnswer(row);
            held.Release();
        }

        try
        {
            await original;
        }
        catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
        {
            // The driver heard its write fail; the movement is listed, and a retry or recovery ends it.
        }

        var ended = await ledger.RetryUntilEnded(request, Timeout);
        await ledger.WaitUntilQuiet(ids, Timeout);
        var replay = await ledger.Coordinator.Execute(request);

        Assert.Equal(TransferStatus.Committed, ended.Status);
        Assert.Equal((TransferStatus.Committed, true), (replay.Status, replay.Replayed));
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        await ledger.AssertBalanced(ids, 2_000);
    }

    /// <summary>
    /// Each call of a movement's protocol runs, and its caller hears a timeout instead of the answer
    /// (a dropped message): the caller cannot tell whether it happened. Whatever the driver does
    /// next, the movement ends committed, applied once, and a retry of the key gets that outcome.
    /// </summary>
    [Theory]
    [InlineData("Begin")]
    [InlineData("Prepare")]
    [InlineData("Decide")]
    // The coordinator applies through CommitWithMetadata (Commit without metadata is kept for callers of earlier versions);
    // the accounts' ids start with the method's name, which keeps them within 64 characters.
    [InlineData("CommitWithMetadata")]
    // The driver answers committed anyway (every account applied it) and gives its lease back.
    [InlineData("Complete")]
    public async Task A_call_that_ran_while_its_caller_heard_a_timeout_leaves_the_movement_applied_once(string method)
    {
        var ledger = new Ledger(Cluster.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId($"lost-{method}"), 2, 1_000);
        var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
        HeldCalls.LoseAnswer(method, request.TransferId);

        try
        {
            await ledger.Coordinator.Execute(request);
        }
        catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
        {
            // The driver heard a timeout; the movement is listed, and a retry or recovery ends it.
        }

        var ended = await ledger.RetryUntilEnded(request, Timeout);
        await ledger.WaitUntilQuiet(ids, Timeout);
        var replay = await ledger.Coordinator.Execute(request);

        Assert.Equal(TransferStatus.Committed, ended.Status);
        Assert.Equal((TransferStatus.Committed, true), (replay.Status, replay.Replayed));
        Assert.Equal([900L, 1_100L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
        await ledger.AssertBalanced(ids, 2_000);
    }

    /// <summary>
    /// A linked transfer's first driver prepares A, checks B (its legs cancel out), prepares C and D,
    /// and runs out of lease before E (D's prepare is held past it). It renews and prepares again, and
    /// this second pass is refused sooner: B was locked (a chargeback) meanwhile. The rejection must
    /// release what the first pass reserved on C and D as part of the answer, not leave it to the
    /// accounts' look, which is held here together with the shard's sweep (every Recover call). When
    /// the driver dies right after the decision instead, recovery aborts every account.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_rejection_on_a_renewed_prepare_pass_releases_what_an_earlier_pass_prepared(bool crashAfterDecide)
    {
        var ledger = new Ledger(Cluster.Client);
        // Five accounts in ascending id order: A, B, C, D, E.
        var ids = await ledger.OpenFunded(Ledger.NewId("renewed"), 5, 1_000);
        var (a, b, c, d, e) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
        var disputed = Ledger.NewId("dep");
        Assert.Equal(TransferStatus.Committed, (await ledger.Execute(TransferRequest.Deposit(disputed, b, 100))).Status);
        Assert.Equal(BatchOutcome.Applied, (await Cluster.Client.GetAccount(b).Dispute(disputed)).Outcome);
        var request = TransferRequest.Linked(Ledger.NewId("lt"),
        [
            new TransferLeg(a, b, 10, "USD"),
            new TransferLeg(b, c, 10, "USD"),
            new TransferLeg(d, e, 5, "USD"),
        ]);
        // Nobody takes the movement over, and no account hands its entries to recovery, until released.
        var recoveries = Enumerable.Range(0, 200).Select(_ => HeldCalls.Before("Recover", request.TransferId)).ToArray();
        // Prepares go to A, C, D, E in that order: A's and C's pass, D's waits.
        HeldCalls.Before("Prepare", request.TransferId).Release();
        HeldCalls.Before("Prepare", request.TransferId).Release();
        var slowPrepare = HeldCalls.Before("Prepare", request.TransferId);
        if (crashAfterDecide)
        {
            ClusterFixture.Faults.Arm(request.TransferId, TransferStep.AfterDecide);
        }

        try
        {
            var original = ledger.Coordinator.Execute(request);
            await slowPrepare.Reached.Task.WaitAsync(Timeout);
            // The lease (5 s, from before Begin) runs out while D's prepare waits; B is locked meanwhile.
            Assert.Equal(BatchOutcome.Applied, (await Cluster.Client.GetAccount(b).Chargeback(disputed)).Outcome);
            await Task.Delay(TimeSpan.FromSeconds(5.5));
            slowPrepare.Release();

            if (crashAfterDecide)
            {
                await Assert.ThrowsAsync<InjectedFaultException>(() => original);
                foreach (var held in recoveries)
                {
                    held.Release();
                }

                var ended = await ledger.WaitForRecordedEnd(request.TransferId, Timeout);
                Assert.Equal((TransferStatus.Rejected, RejectionReason.AccountLocked, 0), (ended.Status, ended.Reason, ended.FailedLeg));
                await ledger.WaitUntilQuiet(ids, Timeout);
            }
            else
            {
                var result = await original;
                Assert.Equal((TransferStatus.Rejected, RejectionReason.AccountLocked, 0), (result.Status, result.Reason, result.FailedLeg));
                // Right after the answer, with recovery held: nothing of it is left in flight.
                Assert.All(result.Accounts!, s => Assert.True(s is { ReservedMinor: 0, IncomingMinor: 0 }, $"{s.AccountId} answered with {s.ReservedMinor} reserved, {s.IncomingMinor} incoming"));
            }

            Assert.Equal([1_000L, 1_000L, 1_000L, 1_000L, 1_000L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
            // The charged-back deposit left the ledger; the rest is where it was.
            await ledger.AssertBalanced(ids, 5_000);
            Assert.True((await ledger.Snapshots([b]))[0].Locked);
        }
        finally
        {
            foreach (var held in recoveries)
            {
                held.Release();
            }
        }
    }

    /// <summary>
    /// Two drivers complete one movement: the first is held before its first apply (after its
    /// decision) until its lease has run out and recovery's driver has completed the movement, then
    /// goes on and completes it too. Each publishes the end, and the silo counts both; an API's
    /// metrics stream counts the movement once (docs/events.md, <c>GET /events/metrics</c>).
    /// </summary>
    [Fact]
    public async Task A_movement_completed_by_two_drivers_counts_once_on_the_metrics_stream()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var json = Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions());
        var log = new TransferEventLog(json, clock);
        var feed = new MetricsFeed();
        var metrics = new LiveMetrics(log, feed, new ApiMetrics(), new RunBoard(null!, feed, json, clock, NullLogger<RunBoard>.Instance), Events.LiveMetricsTests.Admission(clock), null!, json, clock, new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build(), NullLogger<LiveMetrics>.Instance);
        var reference = Cluster.Client.CreateObjectReference<ILedgerEventObserver>(log);
        try
        {
            await Cluster.Client.Hub().Subscribe(reference);
            var ledger = new Ledger(Cluster.Client);
            var ids = await ledger.OpenFunded(Ledger.NewId("two-drivers"), 2, 1_000);
            // The silo reads its receivers every 2 s; then nothing else ends while the movement is watched.
            await Ledger.WaitUntil(() => Task.FromResult(log.SiloLoads().Count > 0), Timeout);
            await Quiet(log);
            metrics.Sample();
            using var watcher = log.Subscribe(null, null, backlog: 0)!;
            var duplicates = log.Duplicates().Dropped;

            var request = new TransferRequest(Ledger.NewId("t"), ids[0], ids[1], 100, "USD");
            var held = HeldCalls.Before(nameof(IAccountGrain.CommitWithMetadata), request.TransferId);
            var original = ledger.Coordinator.Execute(request);
            await held.Reached.Task.WaitAsync(Timeout);
            var ends = new List<TransferEventLog.TransferEvent>();
            await Ledger.WaitUntil(() =>
            {
                while (watcher.Buffer.Reader.TryRead(out var entry))
                {
                    ends.Add(entry);
                }

                return Task.FromResult(ends.Any(e => e.Json.Contains(request.TransferId, StringComparison.Ordinal)));
            }, Timeout);

            // Recovery's driver completed it; the first one goes on, and completes it again.
            held.Release();
            Assert.Equal(TransferStatus.Committed, (await original).Status);
            await Ledger.WaitUntil(() => Task.FromResult(log.Duplicates().Dropped > duplicates), Timeout);
            await Quiet(log);
            while (watcher.Buffer.Reader.TryRead(out var entry))
            {
                ends.Add(entry);
            }

            clock.Advance(TimeSpan.FromSeconds(1));
            var sample = metrics.Sample();
            Assert.Single(ends, e => e.Json.Contains(request.TransferId, StringComparison.Ordinal));
            Assert.Equal(ends.Count(e => e.Json.Contains("\"status\":\"committed\"", StringComparison.Ordinal)), sample.Committed);
            Assert.Equal(duplicates + 1, log.Duplicates().Dropped);
            await ledger.WaitUntilQuiet(ids, Timeout);
            await ledger.AssertBalanced(ids, 2_000);
        }
        finally
        {
            await Cluster.Client.Hub().Unsubscribe(reference);
            Cluster.Client.DeleteObjectReference<ILedgerEventObserver>(reference);
        }
    }

    /// <summary>Until no batch with movements has arrived for half a second (the silo sends every 100 ms).</summary>
    private static async Task Quiet(TransferEventLog log)
    {
        var deadline = DateTime.UtcNow + Timeout;
        var received = log.Received;
        var since = DateTime.UtcNow;
        while (DateTime.UtcNow - since < TimeSpan.FromMilliseconds(500))
        {
            Assert.True(DateTime.UtcNow < deadline, "movements kept ending");
            await Task.Delay(50);
            if (log.Received != received)
            {
                received = log.Received;
                since = DateTime.UtcNow;
            }
        }
    }

    private static string NewIdOnShard(int shard)
    {
        while (true)
        {
            var id = Ledger.NewId("t");
            if (RecoveryShards.Of(id) == shard)
            {
                return id;
            }
        }
    }

    private InMemoryLedgerStore Store => Cluster.GetSiloServiceProvider().GetRequiredService<InMemoryLedgerStore>();

    private T ReadRow<T>(string stateName, GrainId grainId) =>
        Store.Rows[(stateName, grainId)].Read<T>(Cluster.Client.ServiceProvider.GetRequiredService<Serializer>(), out _);

    /// <summary>Changes a stored row as another writer would: the grain's activation keeps the etag it had.</summary>
    private void ReplaceRow<T>(string stateName, GrainId grainId, Func<T, T> change)
    {
        var serializer = Cluster.Client.ServiceProvider.GetRequiredService<Serializer>();
        var row = Store.Rows[(stateName, grainId)];
        var changed = change(row.Read<T>(serializer, out var version));
        Assert.NotNull(row.Replace(serializer.SerializeToArray(changed), version.ToString(CultureInfo.InvariantCulture)));
    }

    public sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<ITransferFaults>(ClusterFixture.Faults);
            ClusterFixture.AddTransactorWithShortRecovery(siloBuilder);
            FaultyRows.AddTo(siloBuilder);
            siloBuilder.AddOutgoingGrainCallFilter<HeldCalls>();
        }
    }
}
