using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Transactor.Grains;

namespace Transactor.Tests.Admission;

/// <summary>The adaptive limit's algorithm and its limiter, on a fake clock: every window is a step of the clock.</summary>
public sealed class AdaptiveConcurrencyLimitTests
{
    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(100);

    private static ConcurrencyLimitOptions Adaptive(int min = 4, int max = 64) => new()
    {
        Mode = LimitMode.Adaptive,
        MinLimit = min,
        MaxLimit = max,
        TargetLatency = TimeSpan.FromMilliseconds(50),
        TargetPercentile = 90,
        Window = Window,
        MinSamplesPerWindow = 10,
        BackoffRatio = 0.5,
        IncreaseStep = 2,
    };

    /// <summary>Feeds one window of <paramref name="samples"/> latencies, the clock stepping past the window before the last.</summary>
    private static LimitChange? FeedWindow(AdaptiveConcurrencyLimit limit, FakeTimeProvider time, TimeSpan latency, int inFlight, int samples = 10)
    {
        LimitChange? change = null;
        for (var i = 0; i < samples; i++)
        {
            if (i == samples - 1)
            {
                time.Advance(Window);
            }

            change = limit.OnSample(latency, inFlight) ?? change;
        }

        return change;
    }

    [Fact]
    public void Latency_over_target_halves_the_limit_down_to_its_floor_and_no_further()
    {
        var time = new FakeTimeProvider();
        var limit = new AdaptiveConcurrencyLimit(32, Adaptive(min: 4), time);

        var limits = new List<int>();
        for (var window = 0; window < 6; window++)
        {
            FeedWindow(limit, time, TimeSpan.FromMilliseconds(200), inFlight: limit.Limit);
            limits.Add(limit.Limit);
        }

        Assert.Equal([16, 8, 4, 4, 4, 4], limits);
    }

    [Fact]
    public void Latency_within_target_raises_a_used_limit_step_by_step_up_to_its_ceiling()
    {
        var time = new FakeTimeProvider();
        var limit = new AdaptiveConcurrencyLimit(58, Adaptive(max: 64), time);

        var change = FeedWindow(limit, time, TimeSpan.FromMilliseconds(10), inFlight: 58);
        Assert.Equal(new LimitChange(58, 60, TimeSpan.FromMilliseconds(10), 10), change);
        FeedWindow(limit, time, TimeSpan.FromMilliseconds(10), inFlight: 60);
        FeedWindow(limit, time, TimeSpan.FromMilliseconds(10), inFlight: 62);
        Assert.Equal(64, limit.Limit);
        Assert.Null(FeedWindow(limit, time, TimeSpan.FromMilliseconds(10), inFlight: 64));
        Assert.Equal(64, limit.Limit);
    }

    [Fact]
    public void A_limit_less_than_half_used_is_not_raised()
    {
        var time = new FakeTimeProvider();
        var limit = new AdaptiveConcurrencyLimit(32, Adaptive(), time);

        Assert.Null(FeedWindow(limit, time, TimeSpan.FromMilliseconds(1), inFlight: 15));
        Assert.Equal(32, limit.Limit);
        FeedWindow(limit, time, TimeSpan.FromMilliseconds(1), inFlight: 16);
        Assert.Equal(34, limit.Limit);
    }

    [Fact]
    public void A_window_is_judged_only_after_its_time_and_its_minimum_samples()
    {
        var time = new FakeTimeProvider();
        var limit = new AdaptiveConcurrencyLimit(32, Adaptive(), time);

        // Nine slow samples after the window's time: not enough to judge.
        time.Advance(Window);
        for (var i = 0; i < 9; i++)
        {
            Assert.Null(limit.OnSample(TimeSpan.FromSeconds(1), 32));
        }

        Assert.Equal(32, limit.Limit);
        Assert.NotNull(limit.OnSample(TimeSpan.FromSeconds(1), 32));
        Assert.Equal(16, limit.Limit);

        // Many slow samples within the next window's time: still not judged.
        for (var i = 0; i < 100; i++)
        {
            Assert.Null(limit.OnSample(TimeSpan.FromSeconds(1), 32));
        }

        Assert.Equal(16, limit.Limit);
    }

    [Fact]
    public void The_percentile_ignores_a_few_slow_samples_below_it()
    {
        var time = new FakeTimeProvider();
        var limit = new AdaptiveConcurrencyLimit(32, Adaptive(), time);

        // 95 fast and 5 slow: the 90th percentile is fast, so the limit goes up, not down.
        for (var i = 0; i < 95; i++)
        {
            limit.OnSample(TimeSpan.FromMilliseconds(5), 32);
        }

        for (var i = 0; i < 4; i++)
        {
            limit.OnSample(TimeSpan.FromSeconds(2), 32);
        }

        time.Advance(Window);
        var change = limit.OnSample(TimeSpan.FromSeconds(2), 32);
        Assert.Equal(new LimitChange(32, 34, TimeSpan.FromMilliseconds(5), 100), change);
    }

    [Fact]
    public void A_step_up_in_latency_drops_the_limit_and_the_return_to_normal_recovers_it()
    {
        var time = new FakeTimeProvider();
        var limit = new AdaptiveConcurrencyLimit(32, Adaptive(min: 4, max: 64), time);

        for (var window = 0; window < 3; window++)
        {
            FeedWindow(limit, time, TimeSpan.FromMilliseconds(500), inFlight: limit.Limit);
        }

        Assert.Equal(4, limit.Limit);
        for (var window = 0; window < 14; window++)
        {
            FeedWindow(limit, time, TimeSpan.FromMilliseconds(10), inFlight: limit.Limit);
        }

        Assert.Equal(32, limit.Limit);
    }

    [Fact]
    public void Invalid_options_are_refused_with_the_reason()
    {
        var options = Adaptive();
        options.BackoffRatio = 1;
        var error = Assert.Throws<ArgumentException>(() => new AdaptiveConcurrencyLimit(8, options, TimeProvider.System));
        Assert.Contains("BackoffRatio", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_limiter_admits_up_to_its_limit_queues_oldest_first_and_sheds_beyond_the_queue()
    {
        var time = new FakeTimeProvider();
        using var limiter = new AdaptiveConcurrencyLimiter("test", 2, 2, new ConcurrencyLimitOptions(), time, NullLogger.Instance);

        var first = await limiter.AcquireAsync();
        var second = await limiter.AcquireAsync();
        var third = limiter.AcquireAsync().AsTask();
        var fourth = limiter.AcquireAsync().AsTask();
        using var fifth = await limiter.AcquireAsync();

        Assert.True(first.IsAcquired && second.IsAcquired);
        Assert.False(third.IsCompleted || fourth.IsCompleted);
        Assert.False(fifth.IsAcquired);
        Assert.Equal(1, limiter.Shed);
        Assert.Equal(2, limiter.Queued);

        first.Dispose();
        using var thirdLease = await third;
        Assert.True(thirdLease.IsAcquired);
        Assert.False(fourth.IsCompleted);
        second.Dispose();
        using var fourthLease = await fourth;
        Assert.True(fourthLease.IsAcquired);
        Assert.Equal(2, limiter.InFlight);
        Assert.Equal(0, limiter.Queued);
    }

    [Fact]
    public async Task A_cancelled_waiter_leaves_the_queue_and_its_place_to_the_next()
    {
        using var limiter = new AdaptiveConcurrencyLimiter("test", 1, 2, new ConcurrencyLimitOptions(), new FakeTimeProvider(), NullLogger.Instance);
        var held = await limiter.AcquireAsync();
        using var cancel = new CancellationTokenSource();
        var cancelled = limiter.AcquireAsync(cancellationToken: cancel.Token).AsTask();
        var next = limiter.AcquireAsync().AsTask();

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await cancelled);
        Assert.Equal(1, limiter.Queued);
        held.Dispose();
        using var lease = await next;
        Assert.True(lease.IsAcquired);
    }

    [Fact]
    public async Task An_adaptive_limiter_lowers_its_limit_when_leases_are_slow_and_admits_by_the_new_limit()
    {
        var time = new FakeTimeProvider();
        var options = Adaptive(min: 2, max: 16);
        options.MinSamplesPerWindow = 4;
        using var limiter = new AdaptiveConcurrencyLimiter("test", 8, 100, options, time, NullLogger.Instance);

        // Eight slow leases: the window closes over target and halves the limit to 4.
        var leases = new List<RateLimitLease>();
        for (var i = 0; i < 8; i++)
        {
            leases.Add(await limiter.AcquireAsync());
        }

        var waiting = Enumerable.Range(0, 8).Select(_ => limiter.AcquireAsync().AsTask()).ToList();
        time.Advance(TimeSpan.FromMilliseconds(200));
        foreach (var lease in leases)
        {
            lease.Dispose();
        }

        Assert.Equal(4, limiter.Limit);
        Assert.Equal(4, limiter.InFlight);
        Assert.Equal(4, waiting.Count(w => w.IsCompleted));
        Assert.Equal(4, limiter.Queued);
        foreach (var w in waiting)
        {
            (await w).Dispose();
        }

        Assert.Equal(0, limiter.InFlight);
    }

    [Fact]
    public async Task A_waiter_past_the_queue_timeout_is_refused_with_its_reason_and_the_next_keeps_its_turn()
    {
        var time = new FakeTimeProvider();
        var options = new ConcurrencyLimitOptions { QueueTimeout = TimeSpan.FromSeconds(1) };
        using var limiter = new AdaptiveConcurrencyLimiter("test", 1, 10, options, time, NullLogger.Instance);
        var held = await limiter.AcquireAsync();
        var old = limiter.AcquireAsync().AsTask();
        time.Advance(TimeSpan.FromMilliseconds(600));
        var young = limiter.AcquireAsync().AsTask();

        // Nothing comes or goes: the limiter's own sweep refuses the waiter past its bound.
        time.Advance(TimeSpan.FromMilliseconds(900));
        Assert.True(old.IsCompleted);
        using var refused = await old;
        Assert.False(refused.IsAcquired);
        Assert.True(refused.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
        Assert.Equal(AdaptiveConcurrencyLimiter.QueueTimeoutReason, reason);
        Assert.False(young.IsCompleted);
        Assert.Equal(1, limiter.TimedOut);
        Assert.Equal(1, limiter.Shed);
        Assert.Equal(1, limiter.Queued);

        held.Dispose();
        using var lease = await young;
        Assert.True(lease.IsAcquired);
        Assert.Equal(0, limiter.Queued);
    }

    [Fact]
    public async Task Once_the_queue_stands_a_waiter_is_refused_after_the_short_bound_while_a_draining_queue_keeps_the_long_one()
    {
        var time = new FakeTimeProvider();
        var options = new ConcurrencyLimitOptions
        {
            QueueTimeout = TimeSpan.FromSeconds(1),
            StandingQueueTimeout = TimeSpan.FromMilliseconds(100),
            StandingQueueInterval = TimeSpan.FromMilliseconds(200),
        };
        using var limiter = new AdaptiveConcurrencyLimiter("test", 1, 10, options, time, NullLogger.Instance);

        // A burst: the queue drains within the standing interval, so a 150 ms wait is admitted.
        var held = await limiter.AcquireAsync();
        var burst = limiter.AcquireAsync().AsTask();
        time.Advance(TimeSpan.FromMilliseconds(150));
        held.Dispose();
        var admitted = await burst;
        Assert.True(admitted.IsAcquired);

        // A queue that stays non-empty past the interval stands: its waiter is refused past 100 ms.
        var waiter = limiter.AcquireAsync().AsTask();
        time.Advance(TimeSpan.FromMilliseconds(150));
        Assert.False(waiter.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(80));
        using var refused = await waiter;
        Assert.False(refused.IsAcquired);
        Assert.True(refused.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
        Assert.Equal(AdaptiveConcurrencyLimiter.QueueTimeoutReason, reason);

        // Refused at once with a full queue is another reason.
        using var tiny = new AdaptiveConcurrencyLimiter("tiny", 1, 0, options, time, NullLogger.Instance);
        using var only = await tiny.AcquireAsync();
        using var full = await tiny.AcquireAsync();
        Assert.True(full.TryGetMetadata(MetadataName.ReasonPhrase, out var fullReason));
        Assert.Equal(AdaptiveConcurrencyLimiter.QueueFullReason, fullReason);
        Assert.Equal(0, tiny.TimedOut);

        admitted.Dispose();
        Assert.Equal(0, limiter.InFlight);
    }

    [Fact]
    public void A_fixed_limiter_never_moves_its_limit()
    {
        var time = new FakeTimeProvider();
        using var limiter = new AdaptiveConcurrencyLimiter("test", 3, 0, new ConcurrencyLimitOptions { Mode = LimitMode.Fixed, TargetLatency = TimeSpan.FromMilliseconds(1) }, time, NullLogger.Instance);
        for (var i = 0; i < 100; i++)
        {
            using var lease = limiter.AttemptAcquire();
            Assert.True(lease.IsAcquired);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(3, limiter.Limit);
    }

    [Fact]
    public void The_log_throttle_lets_one_record_through_per_interval_and_counts_the_rest()
    {
        var time = new FakeTimeProvider();
        var throttle = new LogThrottle(TimeSpan.FromSeconds(5), time);

        Assert.True(throttle.TryLog(out var none));
        Assert.Equal(0, none);
        for (var i = 0; i < 7; i++)
        {
            Assert.False(throttle.TryLog(out _));
            time.Advance(TimeSpan.FromMilliseconds(500));
        }

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(throttle.TryLog(out var held));
        Assert.Equal(7, held);
    }
}
