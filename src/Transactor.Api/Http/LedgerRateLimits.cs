using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Transactor.Api.Security;
using Transactor.Grains;

namespace Transactor.Api.Http;

/// <summary>Limits on money-moving requests in flight (configuration section <c>Transactor:Api</c>).</summary>
public sealed class LedgerLimitOptions
{
    public const string SectionName = "Transactor:Api";

    /// <summary>
    /// Money-moving requests executed at once; more wait in the queue. Near what a silo sustains
    /// (see docs/benchmarks.md): beyond it, more concurrency only adds latency.
    /// </summary>
    public int MaxConcurrentRequests { get; set; } = 256;

    /// <summary>Requests waiting for a slot; beyond this the API answers 429 at once, so excess load is shed, not queued.</summary>
    public int MaxQueuedRequests { get; set; } = 128;

    /// <summary>
    /// Whether <see cref="MaxConcurrentRequests"/> stays fixed (the default) or is where an adaptive
    /// limit starts (section <c>Transactor:Api:Admission</c>). The latency it watches runs from a
    /// request's admission to its answer, the silo's queueing included.
    /// </summary>
    /// <remarks>
    /// The queue is bounded in time as well as size (see docs/overload.md): a request waits at most
    /// 1 s for a place while the queue keeps draining, and at most 100 ms once it has stood for
    /// 200 ms (overload); then it is refused with 503 <c>queue_timeout</c> before any work starts.
    /// </remarks>
    public ConcurrencyLimitOptions Admission { get; set; } = new()
    {
        TargetLatency = TimeSpan.FromMilliseconds(200),
        QueueTimeout = TimeSpan.FromSeconds(1),
        StandingQueueTimeout = TimeSpan.FromMilliseconds(100),
        StandingQueueInterval = TimeSpan.FromMilliseconds(200),
    };
}

/// <summary>Limits on load runs (configuration section <c>Transactor:Runs</c>).</summary>
public sealed class RunLimitOptions
{
    public const string SectionName = "Transactor:Runs";

    /// <summary>Runs one API key (or one address without a key) may start per minute, in a burst of as many; more get 429 with Retry-After.</summary>
    public int StartsPerMinute { get; set; } = 10;

    /// <summary>
    /// How long the cluster's run registry waits for a report of a run this process executes (it reports
    /// every 250 ms) before it ends the run as abandoned: this process died, hangs, or lost the cluster.
    /// </summary>
    public TimeSpan ReportLease { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>The API's one limiter of money-moving requests, shared by every request (see <see cref="LedgerLimitOptions"/>).</summary>
public sealed class LedgerAdmission : IDisposable
{
    public LedgerAdmission(LedgerLimitOptions options, TimeProvider time, TransactorInstruments instruments, ILogger<LedgerAdmission> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(instruments);
        Limiter = new AdaptiveConcurrencyLimiter("api", options.MaxConcurrentRequests, options.MaxQueuedRequests, options.Admission, time, logger);
        instruments.ObserveAdmission("api", () => Limiter.Limit, () => Limiter.Shed);
    }

    public AdaptiveConcurrencyLimiter Limiter { get; }

    public void Dispose() => Limiter.Dispose();
}

/// <summary>
/// Two kinds of limit: the concurrency limit on money-moving requests (<see cref="RequireLedgerAdmission"/>,
/// an endpoint filter over <see cref="LedgerAdmission"/>), and token buckets on every request
/// (<see cref="ClientBuckets"/>, through ASP.NET Core's rate-limiting middleware): one per API key
/// (one per remote address for requests without a valid key) chained with one global bucket.
/// </summary>
internal static class LedgerRateLimits
{
    /// <summary>
    /// Admits the endpoint's requests through the API's one limiter of money-moving requests: at
    /// most its limit at once, then its time-bounded queue, else a refusal (429 <c>too_many_requests</c>
    /// with a full queue, 503 <c>queue_timeout</c> after waiting past the queue's bound), before the
    /// handler reads anything. A client that disconnects while queued leaves the queue.
    /// </summary>
    /// <remarks>
    /// An endpoint filter and not a policy of the rate-limiting middleware: the middleware wraps
    /// every policy in a partitioned limiter, whose partition lookup takes one lock shared by every
    /// request. Under a 5× overload that lock was where the most request threads waited
    /// (docs/profiling.md, "Under overload"); this limiter is one object, so there is nothing to look up.
    /// </remarks>
    public static TBuilder RequireLedgerAdmission<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new LedgerAdmissionEndpoint()).AddEndpointFilter(static async (invocation, next) =>
        {
            var http = invocation.HttpContext;
            var limiter = http.RequestServices.GetRequiredService<LedgerAdmission>().Limiter;
            RateLimitLease lease;
            try
            {
                lease = await limiter.AcquireAsync(1, http.RequestAborted);
            }
            catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
            {
                // The client gave up while queued: nobody reads an answer, and nothing was started.
                return Results.Empty;
            }

            using (lease)
            {
                return lease.IsAcquired ? await next(invocation) : Refusal(lease, http.Response);
            }
        });

    /// <summary>
    /// Sheds a money-moving request before authentication, token buckets and routing work when the
    /// ledger's limiter is saturated (every place taken, the queue full), with the same 429
    /// <c>too_many_requests</c> the limiter would give, from bytes encoded once. Under a 5× overload
    /// most requests end here, and what they cost is taken from the requests being served (docs/overload.md).
    /// A caller without a valid key learns only that the ledger is full; it is refused again with 401 once there is room.
    /// </summary>
    public static WebApplication UseEarlyShedding(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var limiter = app.Services.GetRequiredService<LedgerAdmission>().Limiter;
        var body = Problems.TooManyRequestsBody();
        app.Use((context, next) =>
        {
            if (!limiter.IsSaturated || context.GetEndpoint()?.Metadata.GetMetadata<LedgerAdmissionEndpoint>() is null)
            {
                return next(context);
            }

            limiter.CountShedEarly();
            var response = context.Response;
            response.StatusCode = StatusCodes.Status429TooManyRequests;
            response.Headers.RetryAfter = "1";
            response.ContentType = Problems.ContentType;
            response.ContentLength = body.Length;
            return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
        });
        return app;
    }

    /// <summary>Endpoint metadata of the money-moving endpoints (<see cref="RequireLedgerAdmission"/>).</summary>
    internal sealed class LedgerAdmissionEndpoint;

    /// <summary>The answer to a request the ledger's limiter refused: 503 after a queue timeout, 429 with a full queue.</summary>
    private static IResult Refusal(RateLimitLease lease, HttpResponse response) =>
        lease.TryGetMetadata(MetadataName.ReasonPhrase, out var reason) && reason == AdaptiveConcurrencyLimiter.QueueTimeoutReason
            ? Problems.QueueTimeout(response)
            : Problems.TooManyRequests(response);

    /// <summary>Starting runs (<c>POST /runs</c>): a token bucket per key (per address without one) of <see cref="RunLimitOptions.StartsPerMinute"/>.</summary>
    public const string RunsPolicy = "runs";

    public static IServiceCollection AddLedgerRateLimits(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(LedgerLimitOptions.SectionName).Get<LedgerLimitOptions>() ?? new LedgerLimitOptions();
        if (options.MaxConcurrentRequests < 1 || options.MaxQueuedRequests < 0 || options.Admission.Invalid() is not null)
        {
            throw new InvalidOperationException($"{LedgerLimitOptions.SectionName}: MaxConcurrentRequests must be at least 1, MaxQueuedRequests not negative, and Admission valid ({options.Admission.Invalid()}).");
        }

        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<TransactorInstruments>();
        services.AddSingleton(options);
        services.AddSingleton<LedgerAdmission>();
        var runs = configuration.GetSection(RunLimitOptions.SectionName).Get<RunLimitOptions>() ?? new RunLimitOptions();
        if (runs.StartsPerMinute < 1)
        {
            throw new InvalidOperationException($"{RunLimitOptions.SectionName}: StartsPerMinute must be at least 1.");
        }

        services.AddSingleton<ClientBuckets>();
        services.AddOptions<RateLimiterOptions>().Configure<ClientBuckets>((limiter, buckets) =>
        {
            limiter.GlobalLimiter = buckets.Limiter;
            // A run is cheap to ask for and costly to execute: its own small bucket per caller, beside
            // the bound on runs executing at once (RunManager.MaxActiveRuns, 409 too_many_runs).
            limiter.AddPolicy(RunsPolicy, context => RateLimitPartition.GetTokenBucketLimiter(
                context.User.KeyId() is { } keyId ? "key:" + keyId : "ip:" + context.Connection.RemoteIpAddress,
                _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = runs.StartsPerMinute,
                    TokensPerPeriod = 1,
                    ReplenishmentPeriod = TimeSpan.FromMinutes(1) / runs.StartsPerMinute,
                    QueueLimit = 0,
                    AutoReplenishment = true,
                }));
            limiter.OnRejected = async (context, cancellation) =>
            {
                var http = context.HttpContext;
                if (context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter))
                {
                    // A token bucket: the client (or everyone) sent more than its rate.
                    var seconds = ClientBuckets.WholeSeconds(retryAfter);
                    http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                    await Problems.Create(StatusCodes.Status429TooManyRequests, "rate_limited", "Too many requests for this API key.",
                        "The key's token bucket (or the API's global one) is empty; retry after the number of seconds in Retry-After.").ExecuteAsync(http);
                    return;
                }

                await Problems.TooManyRequests(http.Response).ExecuteAsync(http);
            };
        });
        services.AddRateLimiter(_ => { });
        return services;
    }

    /// <summary>Adds <c>RateLimit-Limit</c>, <c>RateLimit-Remaining</c> and <c>RateLimit-Reset</c> of the caller's bucket to every response.</summary>
    public static WebApplication UseRateLimitHeaders(this WebApplication app)
    {
        var buckets = app.Services.GetRequiredService<ClientBuckets>();
        app.Use((context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                buckets.WriteHeaders(context);
                return Task.CompletedTask;
            });
            return next(context);
        });
        return app;
    }
}

/// <summary>
/// The token buckets: per key (its role's size and rate from <see cref="AuthOptions"/>, or the key's
/// own), per remote address without a key, and one global bucket all keyed requests share. Idle
/// buckets are dropped by the partitioned limiter, which bounds their number by the active callers.
/// </summary>
internal sealed class ClientBuckets : IDisposable
{
    private const string GlobalPartition = "global";

    private readonly AuthOptions _auth;
    private readonly PartitionedRateLimiter<HttpContext> _perCaller;
    private readonly PartitionedRateLimiter<HttpContext> _global;

    public ClientBuckets(IOptions<AuthOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _auth = options.Value;
        _perCaller = PartitionedRateLimiter.Create<HttpContext, Partition>(context =>
            RateLimitPartition.GetTokenBucketLimiter(Of(context), p => Bucket(p.TokensPerSecond, p.Burst)));
        // Requests without a key (health, docs) do not count against the keyed clients' global bucket.
        _global = PartitionedRateLimiter.Create<HttpContext, string>(context => context.User.Identity is not ApiKeyIdentity
            ? RateLimitPartition.GetNoLimiter("anonymous")
            : RateLimitPartition.GetTokenBucketLimiter(GlobalPartition, _ => Bucket(_auth.Global.TokensPerSecond, _auth.Global.Burst)));
        Limiter = PartitionedRateLimiter.CreateChained(_perCaller, _global);
    }

    /// <summary>The limiter the rate-limiting middleware applies to every request.</summary>
    public PartitionedRateLimiter<HttpContext> Limiter { get; }

    /// <summary>The size of the caller's own token bucket.</summary>
    public int BurstOf(HttpContext context) => Of(context).Burst;

    /// <summary>
    /// Takes <paramref name="count"/> more tokens from the caller's bucket and the global one, for a
    /// request that stands for that many more (a batch); false, with the wait, when they are not there.
    /// </summary>
    public bool TryTake(HttpContext context, int count, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.FromSeconds(1);
        if (count <= 0)
        {
            return true;
        }

        RateLimitLease lease;
        try
        {
            lease = Limiter.AttemptAcquire(context, count);
        }
        catch (ArgumentOutOfRangeException)
        {
            // More than a bucket holds: it can never be granted at once.
            return false;
        }

        using (lease)
        {
            if (lease.TryGetMetadata(MetadataName.RetryAfter, out var wait))
            {
                retryAfter = wait;
            }

            return lease.IsAcquired;
        }
    }

    /// <summary>Retry-After and RateLimit-Reset are whole seconds, at least one.</summary>
    public static long WholeSeconds(TimeSpan time) => Math.Max(1, (long)Math.Ceiling(time.TotalSeconds));

    public void WriteHeaders(HttpContext context)
    {
        var partition = Of(context);
        var statistics = _perCaller.GetStatistics(context);
        if (statistics is null || partition.TokensPerSecond <= 0)
        {
            return;
        }

        var headers = context.Response.Headers;
        var remaining = Math.Max(0, statistics.CurrentAvailablePermits);
        headers["RateLimit-Limit"] = partition.Burst.ToString(CultureInfo.InvariantCulture);
        headers["RateLimit-Remaining"] = remaining.ToString(CultureInfo.InvariantCulture);
        // Seconds until the bucket is full again.
        headers["RateLimit-Reset"] = WholeSeconds(TimeSpan.FromSeconds((double)(partition.Burst - remaining) / partition.TokensPerSecond)).ToString(CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        Limiter.Dispose();
        _perCaller.Dispose();
        _global.Dispose();
    }

    private Partition Of(HttpContext context)
    {
        var auth = _auth;
        if (context.User.Identity is not ApiKeyIdentity { } identity)
        {
            return new Partition("ip:" + context.Connection.RemoteIpAddress, auth.Anonymous.TokensPerSecond, auth.Anonymous.Burst);
        }

        var key = identity.Key;
        var role = key.Role == ApiKeyRole.Admin ? auth.Admin : auth.Client;
        return new Partition(identity.RatePartition, key.RatePerSecond ?? role.TokensPerSecond, key.Burst ?? role.Burst);
    }

    /// <summary>
    /// A bucket of <paramref name="burst"/> tokens refilled at <paramref name="tokensPerSecond"/>, in steps
    /// of about a tenth of a second (so that the refill is smooth, not once a second).
    /// </summary>
    private static TokenBucketRateLimiterOptions Bucket(int tokensPerSecond, int burst)
    {
        var perStep = Math.Max(1, tokensPerSecond / 10);
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = Math.Max(1, burst),
            TokensPerPeriod = perStep,
            ReplenishmentPeriod = TimeSpan.FromSeconds((double)perStep / Math.Max(1, tokensPerSecond)),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
    }

    /// <summary>A bucket's identity and size; equal keys share one bucket.</summary>
    private readonly record struct Partition(string Key, int TokensPerSecond, int Burst)
    {
        public bool Equals(Partition other) => Key == other.Key;

        public override int GetHashCode() => Key.GetHashCode(StringComparison.Ordinal);
    }
}
