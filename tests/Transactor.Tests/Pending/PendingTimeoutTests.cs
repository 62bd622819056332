using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.TestingHost;
using Transactor.Domain;
using Transactor.Grains;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Pending;

/// <summary>
/// The windows the review of pending transfers found (docs/transfers.md, "Pending (two-phase)
/// transfers"): a hold recorded after its timeout's first look, a retry with a shorter timeout,
/// reminders of holds refused or ended, an end refused by an account activation behind storage,
/// and an end asked for while the hold is still being placed. On one silo whose grain calls and
/// stored rows the tests can hold or change (<see cref="HeldCalls"/>, <see cref="FaultyRows"/>).
/// </summary>
public sealed class PendingTimeoutTests : OneSiloCluster<FencingTests.SiloConfigurator>
{
    private static readonly TimeSpan ExpiryWait = TimeSpan.FromSeconds(20);

    private Ledger Ledger => new(Cluster.Client);

    /// <summary>
    /// The hold's Begin reaches its shard only after the timeout and the reminder's first look have
    /// passed (a full admission queue, a slow network). The reminder must still be there once the
    /// hold is recorded: before, it was armed before Begin, found nothing at its first look, and
    /// unregistered itself, so the hold never expired.
    /// </summary>
    [Fact]
    public async Task A_hold_recorded_after_its_timeout_would_first_have_been_looked_at_still_expires()
    {
        var (a, b) = await Ledger.OpenPair(300);
        var id = Ledger.NewId("pt");
        var begin = HeldCalls.Before("Begin", id);
        var placing = Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 200, "USD", TimeSpan.FromSeconds(1)));
        await begin.Reached.Task.WaitAsync(ExpiryWait);

        // A late message is a matter of time: this waits past the timeout plus the first look
        // (1 s + 1 s) while the hold is not recorded anywhere yet.
        await Task.Delay(TimeSpan.FromSeconds(3));
        begin.Release();
        var held = await placing;
        Assert.Equal(TransferStatus.Committed, held.Status);

        var expired = await Ledger.WaitForPendingEnd(id, ExpiryWait);
        Assert.Equal(TransferPhase.Expire, expired.Request.Phase);
        await Ledger.AssertPendingBalances(a, (300, 0, 0));
        await Ledger.AssertPendingBalances(b, (0, 0, 0));
    }

    /// <summary>
    /// A first attempt asks for 30 days and fails before anything is recorded (its shard's write
    /// fails); the retry under the same key asks for 1 s and is recorded. The recorded timeout is
    /// the one that counts: before, the first attempt's reminder (30 days) stayed, and the retry's
    /// arming changed nothing.
    /// </summary>
    [Fact]
    public async Task A_retry_recorded_with_a_shorter_timeout_expires_at_the_recorded_timeout()
    {
        var (a, b) = await Ledger.OpenPair(300);
        var id = Ledger.NewId("pt");
        var shard = Cluster.Client.GetRecoveryShard(id);
        await shard.List(1);

        FaultyRows.FailNextWrite(shard.GetGrainId());
        await Assert.ThrowsAnyAsync<Exception>(() => Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 200, "USD", TimeSpan.FromDays(30))));
        var held = await Ledger.RetryUntilEnded(TransferRequest.Pending(id, a, b, 200, "USD", TimeSpan.FromSeconds(1)), ExpiryWait);
        Assert.Equal(TransferStatus.Committed, held.Status);

        var expired = await Ledger.WaitForPendingEnd(id, ExpiryWait);
        Assert.Equal(TransferPhase.Expire, expired.Request.Phase);
        await Ledger.AssertPendingBalances(a, (300, 0, 0));
    }

    /// <summary>A hold that is refused never has a reminder; one that is posted loses its reminder at once, not at its timeout (an hour here).</summary>
    [Fact]
    public async Task Only_a_hold_on_the_accounts_keeps_a_reminder()
    {
        var (a, b) = await Ledger.OpenPair(300);
        var refused = Ledger.NewId("pt");
        var rejected = await Ledger.Coordinator.Execute(TransferRequest.Pending(refused, a, b, 301, "USD", TimeSpan.FromHours(1)));
        Assert.Equal(RejectionReason.InsufficientFunds, rejected.Reason);
        Assert.Empty(await Reminders(refused));

        var posted = Ledger.NewId("pt");
        Assert.Equal(TransferStatus.Committed, (await Ledger.Coordinator.Execute(TransferRequest.Pending(posted, a, b, 200, "USD", TimeSpan.FromHours(1)))).Status);
        Assert.NotEmpty(await Reminders(posted));
        Assert.Equal(TransferStatus.Committed, (await Ledger.Coordinator.EndPending(posted, TransferPhase.Post, 50)).Status);
        await Ledger.WaitUntil(async () => (await Reminders(posted)).Count == 0, ExpiryWait);
        await Ledger.AssertPendingBalances(a, (250, 0, 0));
        await Ledger.AssertPendingBalances(b, (50, 0, 0));
    }

    /// <summary>
    /// An activation of the debit account that loaded its row before another activation applied the
    /// hold gets the post's prepare. It must read storage before it refuses: a refusal is decided
    /// under the pending transfer's one end id, and then no post, void or expiry could ever end the
    /// hold.
    /// </summary>
    [Fact]
    public async Task An_account_checks_storage_before_it_refuses_the_end_of_a_hold_it_does_not_hold()
    {
        var (a, _) = await Ledger.OpenPair(1_000);
        var account = Cluster.Client.GetAccount(a);
        var pendingId = Ledger.NewId("pt");
        var endId = PendingTransfers.EndId(pendingId);
        await account.GetSnapshot();

        // What the other activation stored when it applied the hold.
        ReplaceRow<AccountState>(AccountGrain.StateName, account.GetGrainId(), state =>
        {
            state.AvailableMinor -= 300;
            state.PendingDebitMinor += 300;
            (state.Holds ??= new Dictionary<string, HoldEntry>(StringComparer.Ordinal))[pendingId] = new HoldEntry(EntrySide.Debit, 300);
            state.Version++;
            return state;
        });
        var prepared = await account.Prepare(new PrepareRequest(endId, EntrySide.Debit, 120, "USD", Epoch: 1, External: false, HoldStep.Post, pendingId));
        Assert.Equal((PrepareStatus.Prepared, RejectionReason.None), (prepared.Status, prepared.Reason));
        var answered = await account.Commit(endId, decidedEpoch: 1);

        var stored = ReadRow<AccountState>(AccountGrain.StateName, account.GetGrainId());
        Assert.Equal((880L, 0L), (answered!.AvailableMinor, answered.PendingDebitMinor));
        Assert.Equal((880L, 0L, 0, 0), (stored.AvailableMinor, stored.PendingDebitMinor, stored.Holds?.Count ?? 0, stored.Pending.Count));
    }

    /// <summary>
    /// A post asked for while the hold is still being placed, longer than the coordinator waits:
    /// the answer is retryable (<c>pending_transfer_in_flight</c>), not "not found", and nothing is
    /// recorded, so the post sent again once the hold is placed succeeds.
    /// </summary>
    [Fact]
    public async Task A_post_while_the_hold_is_still_being_placed_is_told_to_retry_and_then_succeeds()
    {
        var (a, b) = await Ledger.OpenPair(300);
        var id = Ledger.NewId("pt");
        // Every prepare of the hold waits (recovery's too, once the first lease has run out).
        var prepares = Enumerable.Range(0, 10).Select(_ => HeldCalls.Before("Prepare", id)).ToArray();
        var placing = Ledger.Coordinator.Execute(TransferRequest.Pending(id, a, b, 200, "USD"));
        await prepares[0].Reached.Task.WaitAsync(ExpiryWait);

        var early = await Ledger.Coordinator.EndPending(id, TransferPhase.Post, null);
        Assert.Equal((TransferStatus.Rejected, RejectionReason.PendingTransferInFlight), (early.Status, early.Reason));
        Assert.Null(await Cluster.Client.GetTransferResult(PendingTransfers.EndId(id)));

        foreach (var prepare in prepares)
        {
            prepare.Release();
        }

        await Ledger.RetryUntilEnded(TransferRequest.Pending(id, a, b, 200, "USD"), ExpiryWait);
        await placing.ContinueWith(_ => { }, TaskScheduler.Default);
        var posted = await Ledger.Coordinator.EndPending(id, TransferPhase.Post, null);
        Assert.Equal(TransferStatus.Committed, posted.Status);
        await Ledger.AssertPendingBalances(a, (100, 0, 0));
        await Ledger.AssertPendingBalances(b, (200, 0, 0));
    }

    private async Task<IList<ReminderEntry>> Reminders(string pendingId)
    {
        var table = Cluster.GetSiloServiceProvider().GetRequiredService<IReminderTable>();
        return (await table.ReadRows(Cluster.Client.GetGrain<IPendingTimeoutGrain>(pendingId).GetGrainId())).Reminders;
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
}
