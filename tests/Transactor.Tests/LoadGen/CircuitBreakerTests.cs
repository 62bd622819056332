using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Transactor.LoadGen;
using Transactor.Tests.Api;

namespace Transactor.Tests.LoadGen;

/// <summary>The polite clients' resilience stack against an API whose transfers answer 503 for a while.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class CircuitBreakerTests(ApiFixture api)
{
    [Fact]
    public async Task Polite_clients_open_the_breaker_stop_sending_probe_and_close_when_the_ledger_recovers_and_the_books_balance()
    {
        var outage = new Outage(TimeSpan.FromSeconds(4));
        await using var faulty = api.WithServices(services => services.AddSingleton<IStartupFilter>(outage));
        var options = new LoadOptions
        {
            // The breaker alone: with the adaptive throttle on, clients meeting the 503s refuse their own requests instead.
            ThrottleK = 0,
            Clients = 8,
            Transfers = 300,
            Accounts = 10,
            PoliteShare = 1,
            MaxAttempts = 50,
            BackoffBase = TimeSpan.FromMilliseconds(5),
            BackoffCap = TimeSpan.FromMilliseconds(50),
            BreakerFailureRatio = 0.5,
            BreakerMinimumThroughput = 10,
            BreakerSamplingDuration = TimeSpan.FromSeconds(1),
            BreakerBreakDuration = TimeSpan.FromMilliseconds(500),
            Seed = 5,
        };

        var summary = await new LoadRunner(faulty.CreateClient(), options, faulty.Server.CreateHandler()).RunAsync();

        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.Equal(300, summary.Transfers);
        Assert.True(summary.GaveUp == 0, $"{summary.GaveUp} transfers given up; errors {string.Join(", ", summary.ErrorsByKind.Select(e => $"{e.Key} {e.Value}"))}; openings {summary.BreakerOpenings}, retries {summary.Retries}");
        // Opened, and opened again after a probe that found the ledger still failing.
        Assert.True(summary.BreakerOpenings >= 2, $"the breaker opened {summary.BreakerOpenings} times during a 4 s outage with a 0.5 s break");
        Assert.True(summary.BreakerClosings >= 1, "the breaker never closed after the ledger recovered");
        Assert.True(summary.BreakerOpenSeconds >= 0.5, $"open {summary.BreakerOpenSeconds} s");
        // Closed, the breaker lets through at most a sampling window's worth plus what was in flight;
        // open, nothing; half-open, one probe. Retrying every 5-50 ms without it, 8 clients would
        // send hundreds of requests into a 4 s outage.
        var bound = (summary.BreakerOpenings * (options.BreakerMinimumThroughput + options.Clients)) + options.Clients;
        Assert.True(outage.Failed <= bound, $"{outage.Failed} requests reached the failing ledger; at most {bound} expected with {summary.BreakerOpenings} openings");
        Assert.True(summary.ErrorsByKind.GetValueOrDefault("circuit_open") > 0, "no client found the breaker open");
    }

    /// <summary>Answers every <c>POST /transfers</c> with 503 for <paramref name="length"/> from the first one, and counts them.</summary>
    private sealed class Outage(TimeSpan length) : IStartupFilter
    {
        private readonly Lock _lock = new();
        private long _startedAt;
        private int _failed;

        public int Failed => Volatile.Read(ref _failed);

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                if (HttpMethods.IsPost(context.Request.Method) && context.Request.Path == "/transfers" && Down())
                {
                    Interlocked.Increment(ref _failed);
                    context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                    context.Response.ContentType = "application/problem+json";
                    await context.Response.WriteAsync("""{"type":"/problems/ledger_unavailable","code":"ledger_unavailable","status":503}""");
                    return;
                }

                await nextMiddleware(context);
            });
            next(app);
        };

        private bool Down()
        {
            lock (_lock)
            {
                if (_startedAt == 0)
                {
                    _startedAt = Stopwatch.GetTimestamp();
                }

                return Stopwatch.GetElapsedTime(_startedAt) < length;
            }
        }
    }
}
