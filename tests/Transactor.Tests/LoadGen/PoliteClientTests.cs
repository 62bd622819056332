using System.Net;
using Transactor.LoadGen;

namespace Transactor.Tests.LoadGen;

/// <summary>
/// The polite client's own refusals: a full bulkhead and the adaptive throttle refuse a request
/// with a value, at once, before anything is sent, and a place given back goes to the oldest waiter.
/// </summary>
public sealed class PoliteClientTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_full_bulkhead_refuses_at_once_and_a_freed_place_goes_to_the_request_waiting_for_it()
    {
        using var transport = new Answering(HttpStatusCode.Created);
        using var client = PoliteHttp.Create(transport, new Uri("http://ledger"), new LoadOptions { BulkheadLimit = 1, ThrottleK = 0 }, new LoadStats());

        var first = await client.EnterAsync(CancellationToken.None);
        var waiting = client.EnterAsync(CancellationToken.None);
        var refused = client.EnterAsync(CancellationToken.None);

        Assert.True(first.IsAcquired);
        Assert.False(waiting.IsCompleted, "with one place taken and room in the queue, the second request waits");
        Assert.True(refused.IsCompleted, "with the place and the queue taken, a refusal must not wait");
        var refusal = await refused;
        Assert.False(refusal.IsAcquired);
        Assert.Equal("bulkhead_full", PoliteClient.Refusal(refusal));

        first.Dispose();
        var second = await waiting.AsTask().WaitAsync(Patience);
        Assert.True(second.IsAcquired);

        // Giving a place back twice frees it once: the bulkhead still holds one request at a time.
        second.Dispose();
        second.Dispose();
        using var third = await client.EnterAsync(CancellationToken.None).AsTask().WaitAsync(Patience);
        var fourth = client.EnterAsync(CancellationToken.None);
        Assert.True(third.IsAcquired);
        Assert.False(fourth.IsCompleted, "a place given back twice must not count as two");
        third.Dispose();
        (await fourth.AsTask().WaitAsync(Patience)).Dispose();
    }

    [Fact]
    public async Task Once_the_ledger_sheds_everything_the_throttle_refuses_most_requests_before_they_take_a_place()
    {
        using var transport = new Answering(HttpStatusCode.TooManyRequests);
        var stats = new LoadStats();
        using var client = PoliteHttp.Create(transport, new Uri("http://ledger"), new LoadOptions { BulkheadLimit = 1, ThrottleK = 2, MaxAttempts = 1 }, stats);
        for (var i = 0; i < 20; i++)
        {
            // Straight through the pipeline: every answer feeds the throttle.
            using var response = await client.Http.PostAsync("/transfers", content: null);
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        }

        var sentBefore = transport.Sent;
        var throttled = 0;
        for (var i = 0; i < 100; i++)
        {
            var pending = client.EnterAsync(CancellationToken.None);
            Assert.True(pending.IsCompleted, "a throttle refusal must not wait, and the bulkhead is free");
            using var lease = await pending;
            if (!lease.IsAcquired)
            {
                Assert.Equal("throttled", PoliteClient.Refusal(lease));
                throttled++;
            }
        }

        // Every answer so far was shedding and none an acceptance: the throttle refuses the n-th
        // request with probability n / (n + 1), about 95.8 of 100 in all (standard deviation about
        // 2; its random source is seeded per process). The throttle counts over its last 2 s: the
        // loops above and below take microseconds, so only a stall of seconds could age the shed
        // answers out.
        Assert.InRange(throttled, 85, 100);
        Assert.Equal(sentBefore, transport.Sent);
        Assert.Equal(20, stats.Attempts);
    }

    /// <summary>Answers every request at once with one status, and counts them.</summary>
    private sealed class Answering(HttpStatusCode status) : HttpMessageHandler
    {
        private int _sent;

        public int Sent => Volatile.Read(ref _sent);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _sent);
            return Task.FromResult(new HttpResponseMessage(status) { RequestMessage = request });
        }
    }
}
