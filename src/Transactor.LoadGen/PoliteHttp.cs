using System.Diagnostics;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Transactor.LoadGen;

/// <summary>
/// The HTTP client of polite load-generator clients: the .NET resilience stack
/// (Microsoft.Extensions.Http.Resilience over Polly) between them and the ledger, and in front of it
/// two checks that refuse a request before it is built into an attempt (<see cref="PoliteClient"/>):
/// an adaptive throttle (<see cref="AdaptiveThrottle"/>, <see cref="LoadOptions.ThrottleK"/>, fed by
/// every attempt's answer: once the ledger sheds, the clients refuse part of their own requests) and
/// a bulkhead (at most <see cref="LoadOptions.BulkheadLimit"/> requests at once, as many again
/// waiting, the rest refused). Then the pipeline: retries (up to <see cref="LoadOptions.MaxAttempts"/>
/// attempts, exponential backoff with full jitter, or the server's <c>Retry-After</c> when it gives
/// one), a circuit breaker shared by every polite client (opens when at least
/// <see cref="LoadOptions.BreakerFailureRatio"/> of <see cref="LoadOptions.BreakerMinimumThroughput"/>
/// or more requests within <see cref="LoadOptions.BreakerSamplingDuration"/> failed transiently,
/// stays open <see cref="LoadOptions.BreakerBreakDuration"/>, then lets one probe through), and a
/// timeout per attempt. The breaker counts failures of the ledger (5xx, timeouts, connection
/// errors), not 429: shedding is the throttle's signal, and a breaker that opened on it would stop
/// every client for its whole break while the ledger still serves at capacity. Impolite clients use
/// the bare client and none of this.
/// </summary>
/// <remarks>
/// The throttle and the bulkhead answer with a value, not an exception, and sit outside Polly's
/// pipeline for that reason: under a 5× overload they refuse thousands of requests a second, and a
/// refusal thrown through the pipeline's async layers cost the generator both of its cores
/// (docs/benchmarks.md, "e2e overload step").
/// </remarks>
public static class PoliteHttp
{
    /// <summary>Where the counting handler leaves the duration of the last attempt of a request, in stopwatch ticks.</summary>
    public static readonly HttpRequestOptionsKey<long> LastAttemptTicks = new("transactor.loadgen.last-attempt-ticks");

    /// <summary>Builds the client; it sends through <paramref name="transport"/>, which it never disposes.</summary>
    public static PoliteClient Create(HttpMessageHandler transport, Uri? baseAddress, LoadOptions options, LoadStats stats)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BulkheadLimit, 1);
        var jitter = new Random(HashCode.Combine(options.Seed, "polite"));
        var jitterLock = new Lock();
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>();
        if (options.MaxAttempts > 1)
        {
            // Polly takes at least one retry; one attempt in all means no retry strategy at all.
            builder.AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = options.MaxAttempts - 1,
                ShouldRetryAfterHeader = false,
                DelayGenerator = args =>
                {
                    // Retry-After when the server gives one (not beyond the cap: a client's patience has
                    // a bound too); else full jitter: uniform in [0, min(cap, base·2^attempt)].
                    if (args.Outcome.Result?.Headers.RetryAfter?.Delta is { } retryAfter)
                    {
                        return ValueTask.FromResult<TimeSpan?>(retryAfter < options.BackoffCap ? retryAfter : options.BackoffCap);
                    }

                    var ceilingMs = Math.Min(options.BackoffCap.TotalMilliseconds, options.BackoffBase.TotalMilliseconds * Math.Pow(2, Math.Min(args.AttemptNumber + 1, 20)));
                    double draw;
                    lock (jitterLock)
                    {
                        draw = jitter.NextDouble();
                    }

                    return ValueTask.FromResult<TimeSpan?>(TimeSpan.FromMilliseconds(draw * ceilingMs));
                },
                OnRetry = _ =>
                {
                    stats.Retry();
                    return ValueTask.CompletedTask;
                },
            });
        }

        var pipeline = builder
            .AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(
                    HttpClientResiliencePredicates.IsTransient(args.Outcome) && args.Outcome.Result?.StatusCode != System.Net.HttpStatusCode.TooManyRequests),
                FailureRatio = options.BreakerFailureRatio,
                MinimumThroughput = options.BreakerMinimumThroughput,
                SamplingDuration = options.BreakerSamplingDuration,
                BreakDuration = options.BreakerBreakDuration,
                OnOpened = _ =>
                {
                    stats.BreakerOpened();
                    return ValueTask.CompletedTask;
                },
                OnHalfOpened = _ =>
                {
                    stats.BreakerHalfOpened();
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ =>
                {
                    stats.BreakerClosed();
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(new HttpTimeoutStrategyOptions
            {
                Timeout = options.RequestTimeout,
                OnTimeout = _ =>
                {
                    stats.Error("timeout");
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
        var throttle = options.ThrottleK > 0 ? new AdaptiveThrottle(options.ThrottleK, new Random(HashCode.Combine(options.Seed, "throttle"))) : null;
        var handler = new ResilienceHandler(pipeline) { InnerHandler = new CountingHandler(stats, throttle) { InnerHandler = new SharedTransport(transport) } };
        var bulkhead = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = options.BulkheadLimit,
            QueueLimit = options.BulkheadLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
        return new PoliteClient(new HttpClient(handler) { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan }, bulkhead, throttle);
    }

    /// <summary>True for what the pipeline throws instead of an answer: the breaker open, an attempt timed out.</summary>
    public static bool IsRefusal(Exception exception) =>
        exception is BrokenCircuitException or TimeoutRejectedException;

    /// <summary>Counts every attempt the pipeline makes, as the impolite clients count theirs, and times the last one.</summary>
    private sealed class CountingHandler(LoadStats stats, AdaptiveThrottle? throttle) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var sent = Stopwatch.GetTimestamp();
            stats.Attempt();
            try
            {
                var response = await base.SendAsync(request, cancellationToken);
                var answered = Stopwatch.GetTimestamp();
                request.Options.Set(LastAttemptTicks, answered - sent);
                var status = (int)response.StatusCode;
                if (status is 429 or 503)
                {
                    throttle?.Shed(answered);
                }
                else
                {
                    throttle?.Accepted(answered);
                }

                if (status == 429)
                {
                    stats.RateLimited();
                    stats.Error("429");
                }
                else if (status >= 500)
                {
                    stats.Error(status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                return response;
            }
            catch (HttpRequestException)
            {
                stats.Error("connection");
                throw;
            }
        }
    }

    /// <summary>Lets the polite chain share the run's transport without disposing it.</summary>
    private sealed class SharedTransport(HttpMessageHandler transport) : HttpMessageHandler
    {
        private readonly HttpMessageInvoker _invoker = new(transport, disposeHandler: false);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            _invoker.SendAsync(request, cancellationToken);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _invoker.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A polite client: the resilience pipeline's <see cref="Http"/> client, and the two local checks a
/// request passes first (<see cref="PoliteHttp"/>). Refusals are values: a refused request costs a
/// lock and a counter, not an exception.
/// </summary>
public sealed class PoliteClient(HttpClient http, ConcurrencyLimiter bulkhead, AdaptiveThrottle? throttle) : IDisposable
{
    /// <summary>Sends through retries, the circuit breaker and the attempt timeout.</summary>
    public HttpClient Http => http;

    /// <summary>
    /// Takes a place in the bulkhead for one request, its retries included, waiting in its queue
    /// when every place is taken. The lease is not acquired (<see cref="RateLimitLease.IsAcquired"/>
    /// false, at once, no exception) when the queue is full too, or when the adaptive throttle
    /// refuses the request; <see cref="Refusal"/> then says which. Dispose the lease when the
    /// request has ended.
    /// </summary>
    public ValueTask<RateLimitLease> EnterAsync(CancellationToken cancellation)
    {
        if (throttle?.ShouldRefuse(Stopwatch.GetTimestamp()) == true)
        {
            return ValueTask.FromResult<RateLimitLease>(Refused.Throttled);
        }

        return bulkhead.AcquireAsync(1, cancellation);
    }

    /// <summary>Why <paramref name="lease"/> was not acquired: <c>throttled</c> or <c>bulkhead_full</c>.</summary>
    public static string Refusal(RateLimitLease lease) => lease == Refused.Throttled ? "throttled" : "bulkhead_full";

    public void Dispose()
    {
        http.Dispose();
        bulkhead.Dispose();
    }

    /// <summary>The lease of a request the throttle refused.</summary>
    private sealed class Refused : RateLimitLease
    {
        public static readonly Refused Throttled = new();

        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}
