using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
    public ConcurrencyLimitOptions Admission { get; set; } = new() { TargetLatency = TimeSpan.FromMilliseconds(200) };
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

internal static class LedgerRateLimits
{
    public const string Policy = "ledger";

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
        services.AddRateLimiter(limiter =>
        {
            // One partition: every money-moving request shares the limiter, which lives as long as the process.
            limiter.AddPolicy(Policy, context => RateLimitPartition.Get(
                0, _ => context.RequestServices.GetRequiredService<LedgerAdmission>().Limiter));
            limiter.OnRejected = async (context, cancellation) =>
            {
                await Problems.TooManyRequests(context.HttpContext.Response).ExecuteAsync(context.HttpContext);
            };
        });
        return services;
    }
}
