using Microsoft.Extensions.Options;
using Transactor.Api.Events;

namespace Transactor.Tests.Events;

/// <summary>The API's ring of movements and its subscribers, without a cluster.</summary>
public sealed class TransferEventLogTests
{
    [Fact]
    public async Task Resuming_within_the_ring_replays_every_later_movement_and_beyond_it_says_how_many_are_lost()
    {
        var log = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        const int total = TransferEventLog.RingCapacity + 500;
        await log.OnEvents(Batch(0, total));

        // Within the ring: everything after the id, in order, no gap.
        using (var within = log.Subscribe(null, log.EventId(total - 100), backlog: 0)!)
        {
            Assert.Null(within.Gap);
            Assert.Equal(Enumerable.Range(total - 99, 100).Select(i => (long)i), within.Replay.Select(e => e.Sequence));
        }

        // Older than the ring: a gap event with the count lost, then all that is kept.
        using var behind = log.Subscribe(null, log.EventId(100), backlog: 0)!;
        Assert.Equal("too_old", behind.Gap!.Reason);
        Assert.Equal(total - TransferEventLog.RingCapacity + 1, behind.Replay[0].Sequence);
        Assert.Equal(behind.Replay[0].Sequence - 101, behind.Gap.Lost);
        Assert.Equal(TransferEventLog.RingCapacity, behind.Replay.Count);
    }

    [Fact]
    public async Task A_subscriber_buffer_drops_its_oldest_past_its_bound_and_counts_them()
    {
        var log = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        using var subscription = log.Subscribe("acct", null, backlog: 0)!;
        using var other = log.Subscribe("nobody", null, backlog: 0)!;
        await log.OnEvents(Batch(0, TransferEventLog.SubscriberCapacity + 10));
        Assert.Equal(TransferEventLog.SubscriberCapacity, subscription.Buffer.Count);
        Assert.Equal(10, subscription.Buffer.TakeMissed());
        Assert.True(subscription.Buffer.Reader.TryRead(out var first));
        Assert.Equal(11, first.Sequence);
        Assert.Equal(0, other.Buffer.Count);
    }

    [Fact]
    public void Subscribers_beyond_the_limit_are_refused()
    {
        var log = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        var subscriptions = Enumerable.Range(0, TransferEventLog.MaxSubscribers).Select(_ => log.Subscribe(null, null, 0)!).ToArray();
        Assert.Null(log.Subscribe(null, null, 0));
        subscriptions[0].Dispose();
        using var again = log.Subscribe(null, null, 0);
        Assert.NotNull(again);
        foreach (var subscription in subscriptions.Skip(1))
        {
            subscription.Dispose();
        }
    }

    private static LedgerEventBatch Batch(int first, int count) => new(
        "S127.0.0.1:1:1",
        Enumerable.Range(first, count).Select(i => new MovementEvent($"m-{i}", TransferKind.Deposit, null, "acct", 100, "USD", TransferStatus.Committed, null, 1.5, null, DateTimeOffset.UtcNow, null, 0, i * 100L, i)).ToArray(),
        new SiloLoad(0, 0, 0, 0, 0, 1, 1, DateTimeOffset.UtcNow),
        0);
}
