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
        using (var within = log.Subscribe(null, log.EventId(total - 100)!, backlog: 0)!)
        {
            Assert.Null(within.Gap);
            Assert.Equal(Enumerable.Range(total - 99, 100).Select(i => (long)i), within.Replay.Select(e => e.Sequence));
        }

        // Older than the ring (the id of movement 100, long gone): a gap event with the count lost, then all that is kept.
        Assert.Null(log.EventId(100));
        using var behind = log.Subscribe(null, $"{TransferEventLog.SiloTag("S127.0.0.1:1:1")}.100", backlog: 0)!;
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

    [Fact]
    public async Task An_event_id_from_one_API_process_resumes_on_another_that_received_the_silos_batches_in_another_order()
    {
        // Two silos, each sending numbered batches; two API processes get them interleaved differently.
        var a = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        var b = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        var one = Enumerable.Range(0, 4).Select(i => Numbered("S10.0.0.1:11111:7", "one", 1 + (i * 25), 25)).ToArray();
        var two = Enumerable.Range(0, 4).Select(i => Numbered("S10.0.0.2:11111:7", "two", 1 + (i * 25), 25)).ToArray();
        using var watcher = a.Subscribe(null, null, backlog: 0)!;
        foreach (var (x, y) in one.Zip(two))
        {
            await a.OnEvents(x);
            await a.OnEvents(y);
            await b.OnEvents(y);
            await b.OnEvents(x);
        }

        // The client read A's stream up to some point, then reconnects to B with its last id.
        var all = one.Concat(two).SelectMany(batch => batch.Movements).Select(m => m.TransferId).ToHashSet();
        var seenOnA = Drain(watcher);
        foreach (var stop in new[] { 0, 37, 60, 99, 137, 199 })
        {
            var read = seenOnA.Take(stop + 1).Select(IdOf).ToList();
            using var resumed = b.Subscribe(null, seenOnA[stop].Id, backlog: 0)!;
            Assert.Null(resumed.Gap);
            var rest = resumed.Replay.Select(IdOf).ToList();
            Assert.Empty(rest.Intersect(read));
            Assert.Equal(all.Count, read.Count + rest.Count);
            Assert.True(all.SetEquals(read.Concat(rest)), $"resuming at {stop} on B lost movements");
        }

        // A process that is not sent a silo's first batches says how many it cannot replay.
        var late = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        await late.OnEvents(one[3]);
        await late.OnEvents(two[3]);
        using var behind = late.Subscribe(null, seenOnA[99].Id, backlog: 0)!;
        Assert.Equal("too_old", behind.Gap!.Reason);
        var cursor = seenOnA[99].Id.Split('-').ToDictionary(p => p[..8], p => long.Parse(p[9..], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(cursor.Values.Sum(upTo => Math.Max(0, 75 - upTo)), behind.Gap.Lost);
        Assert.Equal(50, behind.Replay.Count);
    }

    [Fact]
    public async Task A_batch_that_arrives_before_an_earlier_one_is_replayed_again_rather_than_lost()
    {
        var a = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        var b = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        var batches = Enumerable.Range(0, 3).Select(i => Numbered("S10.0.0.1:11111:7", "one", 1 + (i * 10), 10)).ToArray();
        using var watcher = a.Subscribe(null, null, backlog: 0)!;
        await a.OnEvents(batches[0]);
        await a.OnEvents(batches[2]);
        await a.OnEvents(batches[1]);
        foreach (var batch in batches)
        {
            await b.OnEvents(batch);
        }

        var seenOnA = Drain(watcher);
        Assert.Equal(30, seenOnA.Count);
        foreach (var stop in Enumerable.Range(0, 30))
        {
            var read = seenOnA.Take(stop + 1).Select(IdOf).ToHashSet();
            using var resumed = b.Subscribe(null, seenOnA[stop].Id, backlog: 0)!;
            var rest = resumed.Replay.Select(IdOf).ToHashSet();
            Assert.Equal(30, read.Union(rest).Count());
        }

        // Batch 3's movements, received before batch 2, do not move the cursor past batch 2.
        Assert.EndsWith(".10", seenOnA[19].Id, StringComparison.Ordinal);
        Assert.EndsWith(".30", seenOnA[29].Id, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_same_end_sent_by_two_silos_is_one_event_and_the_memory_of_ends_is_bounded()
    {
        var log = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        using var subscription = log.Subscribe(null, null, backlog: 0)!;

        // Two drivers completed m-3 and m-4 (a takeover racing the first driver): each silo sends them.
        await log.OnEvents(Batch(0, 5, "S10.0.0.1:11111:1"));
        await log.OnEvents(Batch(3, 4, "S10.0.0.2:11111:1"));
        var ids = Drain(subscription).Select(e => e.Json).Select(j => System.Text.Json.JsonDocument.Parse(j).RootElement.GetProperty("id").GetString()).ToArray();
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"m-{i}"), ids);
        Assert.Equal(2, log.Duplicates().Dropped);

        // Another end of the same id is not a duplicate: a request refused by validation, then a valid one under its key.
        await log.OnEvents(Batch(0, 1, "S10.0.0.1:11111:1", TransferStatus.Rejected));
        Assert.Single(Drain(subscription));

        // The ends remembered stay at their bound however many movements end.
        await log.OnEvents(Batch(100, TransferEventLog.DedupeCapacity + 5_000));
        Assert.Equal(TransferEventLog.DedupeCapacity, log.Duplicates().Remembered);
    }

    [Fact]
    public void A_sample_sends_exactly_its_rate_in_any_second_at_most_four_times()
    {
        for (var perSecond = 1; perSecond <= Transactor.Api.Events.EventsApi.MaxSampleRate; perSecond++)
        {
            var sample = new Transactor.Api.Events.EventsApi.Sample(perSecond);
            var sends = (int)Math.Round(1 / sample.Interval.TotalSeconds);
            Assert.InRange(sends, 1, 4);
            var quotas = Enumerable.Range(0, 3 * sends).Select(_ => sample.NextQuota()).ToArray();
            Assert.All(quotas, q => Assert.InRange(q, 1, sample.MostPerSend));
            // Any run of `sends` consecutive sends (the most that fit in a second) carries the rate, not more.
            for (var start = 0; start + sends <= quotas.Length; start++)
            {
                Assert.Equal(perSecond, quotas.Skip(start).Take(sends).Sum());
            }
        }
    }

    [Fact]
    public async Task A_subscription_whose_response_never_started_frees_its_place_when_the_request_ends()
    {
        var log = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        var response = new CompletingResponseFeature();
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpResponseFeature>(response);
        context.User = Admin;

        // The endpoint takes the place and returns its stream, which is never executed (the response failed to start).
        var result = await Transactor.Api.Events.EventsApi.Transfers(context, log, null!, Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()), null, null, null);
        Assert.IsNotType<Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult>(result);
        Assert.Equal(1, log.Subscribers().Count);

        response.Complete();
        Assert.Equal(0, log.Subscribers().Count);

        // And the metrics stream's place likewise.
        var feed = new MetricsFeed();
        var metricsResponse = new CompletingResponseFeature();
        var metricsContext = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        metricsContext.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpResponseFeature>(metricsResponse);
        metricsContext.User = Admin;
        _ = Transactor.Api.Events.EventsApi.Metrics(metricsContext, feed, Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()));
        Assert.Equal(1, feed.Count);
        metricsResponse.Complete();
        Assert.Equal(0, feed.Count);
    }

    /// <summary>A caller with the admin role and no key id (as the configured admin key, whose stream no revoke can end).</summary>
    private static System.Security.Claims.ClaimsPrincipal Admin { get; } =
        new(new System.Security.Claims.ClaimsIdentity([new System.Security.Claims.Claim(System.Security.Claims.ClaimTypes.Role, Transactor.Api.Security.Roles.Admin)], "test"));

    private static string IdOf(TransferEventLog.TransferEvent entry) =>
        System.Text.Json.JsonDocument.Parse(entry.Json).RootElement.GetProperty("id").GetString()!;

    private static LedgerEventBatch Numbered(string silo, string prefix, long first, int count) => new(
        silo,
        Enumerable.Range(0, count).Select(i => new MovementEvent($"{prefix}-{first + i}", TransferKind.Deposit, null, "acct", 100, "USD", TransferStatus.Committed, null, 1.5, null, DateTimeOffset.UtcNow, null, 0, 0, 0)).ToArray(),
        new SiloLoad(0, 0, 0, 0, 0, 1, 1, DateTimeOffset.UtcNow),
        0,
        first);

    private static List<TransferEventLog.TransferEvent> Drain(TransferEventLog.Subscription subscription)
    {
        var events = new List<TransferEventLog.TransferEvent>();
        while (subscription.Buffer.Reader.TryRead(out var entry))
        {
            events.Add(entry);
        }

        return events;
    }

    /// <summary>A response whose end runs the callbacks registered for it, as a server's does when the request ends.</summary>
    private sealed class CompletingResponseFeature : Microsoft.AspNetCore.Http.Features.HttpResponseFeature
    {
        private readonly List<(Func<object, Task> Callback, object State)> _completed = [];

        public override void OnCompleted(Func<object, Task> callback, object state) => _completed.Add((callback, state));

        public void Complete()
        {
            foreach (var (callback, state) in _completed)
            {
                callback(state).GetAwaiter().GetResult();
            }
        }
    }

    private static LedgerEventBatch Batch(int first, int count, string silo = "S127.0.0.1:1:1", TransferStatus status = TransferStatus.Committed) => new(
        silo,
        Enumerable.Range(first, count).Select(i => new MovementEvent($"m-{i}", TransferKind.Deposit, null, "acct", 100, "USD", status, null, 1.5, null, DateTimeOffset.UtcNow, null, 0, i * 100L, i)).ToArray(),
        new SiloLoad(0, 0, 0, 0, 0, 1, 1, DateTimeOffset.UtcNow),
        0);
}
