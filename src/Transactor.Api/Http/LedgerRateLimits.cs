using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;

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
}

internal static class LedgerRateLimits
{
    public const string Policy = "ledger";

    public static IServiceCollection AddLedgerRateLimits(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(LedgerLimitOptions.SectionName).Get<LedgerLimitOptions>() ?? new LedgerLimitOptions();
        services.AddRateLimiter(limiter =>
        {
            limiter.AddConcurrencyLimiter(Policy, o =>
            {
                o.PermitLimit = options.MaxConcurrentRequests;
                o.QueueLimit = options.MaxQueuedRequests;
                o.QueueProcessingOrder = QueueProcessingOrder.OldestFirst;
            });
            limiter.OnRejected = async (context, cancellation) =>
            {
                await Problems.TooManyRequests(context.HttpContext.Response).ExecuteAsync(context.HttpContext);
            };
        });
        return services;
    }
}
