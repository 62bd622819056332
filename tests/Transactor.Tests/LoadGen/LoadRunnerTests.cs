using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Transactor.LoadGen;
using Transactor.Tests.Api;

namespace Transactor.Tests.LoadGen;

[Collection(ApiTestGroup.Name)]
public sealed class LoadRunnerTests(ApiFixture api)
{
    [Theory]
    [InlineData(Skew.Uniform)]
    [InlineData(Skew.Zipf)]
    public async Task A_closed_loop_run_sends_every_transfer_and_the_books_balance(Skew skew)
    {
        var options = new LoadOptions { Clients = 16, Transfers = 1_500, Accounts = 40, InitialBalanceMinor = 20_000, MaxAmountMinor = 5_000, Skew = skew, Seed = 7 };

        var summary = await new LoadRunner(api.CreateClient(), options).RunAsync();

        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.Equal(1_500, summary.Transfers);
        Assert.Equal(summary.Transfers, summary.Committed + summary.RejectedByReason.Values.Sum() + summary.GaveUp);
        Assert.True(summary.Committed > 0);
        Assert.All(summary.RejectedByReason.Keys, code => Assert.Equal("insufficient_funds", code));
        Assert.True(summary.P99LatencyMs >= summary.P50LatencyMs && summary.P50LatencyMs > 0);
    }

    [Fact]
    public async Task The_ping_baseline_gets_an_answer_to_every_request()
    {
        var client = api.CreateClient();

        var ping = await PingRunner.RunAsync(client, clients: 4, TimeSpan.FromSeconds(1));

        Assert.True(ping.Requests > 0);
        Assert.Equal(0, ping.Failed);
        Assert.True(ping.P99LatencyMs >= ping.P50LatencyMs && ping.P50LatencyMs > 0);
    }

    [Fact]
    public async Task An_open_loop_run_at_a_fixed_rate_balances_the_books()
    {
        var options = new LoadOptions { Clients = 8, Transfers = 300, Accounts = 20, Rate = 200, Seed = 3 };

        var summary = await new LoadRunner(api.CreateClient(), options).RunAsync();

        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.Equal(300, summary.Transfers);
        Assert.InRange(summary.ElapsedSeconds, 1.0, 30.0);
    }

    /// <summary>
    /// A ledger that executes one money-moving request at a time and queues none, so most requests
    /// get 429: from the API's limit on requests, or from the silo's on movements (the API then has
    /// room, and the silo refuses before recording anything).
    /// </summary>
    [Theory]
    [InlineData("Transactor:Api:MaxConcurrentRequests", "Transactor:Api:MaxQueuedRequests")]
    [InlineData("Transactor:Transfers:MaxConcurrentTransfers", "Transactor:Transfers:MaxQueuedTransfers")]
    public async Task Rate_limited_clients_retry_under_the_same_key_and_never_move_money_twice(string concurrencyLimit, string queueLimit)
    {
        await using var tight = api.WithSettings((concurrencyLimit, "1"), (queueLimit, "0"));
        // Whether two requests ever meet at the limit depends on timing: on a fast, idle machine a
        // run can finish without one. Up to three runs, each checked in full, until one is refused.
        Summary summary = null!;
        for (var run = 0; run < 3; run++)
        {
            var options = new LoadOptions
            {
                Clients = 12,
                Transfers = 400,
                Accounts = 10,
                PoliteShare = 0.5,
                MaxAttempts = 50,
                BackoffBase = TimeSpan.FromMilliseconds(2),
                BackoffCap = TimeSpan.FromMilliseconds(20),
                Seed = 11 + run,
            };

            summary = await new LoadRunner(tight.CreateClient(), options).RunAsync();

            Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
            Assert.Equal(400, summary.Transfers);
            if (summary.RateLimitedResponses > 0)
            {
                break;
            }
        }

        Assert.True(summary.RateLimitedResponses > 0, "the concurrency limit was never hit in three runs");
        Assert.True(summary.Retries >= summary.RateLimitedResponses - summary.GaveUp);
        // The answered request alone never takes longer than the transfer with its waits and retries.
        Assert.InRange(summary.AnsweredP99LatencyMs, double.Epsilon, summary.P99LatencyMs * 1.01);
    }

    /// <summary>
    /// A true open loop sends each transfer when due, whatever is unanswered: against an API that
    /// holds every transfer 300 ms, two "clients" still put dozens in flight, up to the cap; beyond
    /// it transfers are dropped and counted, and the books balance.
    /// </summary>
    [Fact]
    public async Task A_true_open_loop_sends_without_waiting_for_answers_up_to_its_in_flight_cap()
    {
        await using var slow = api.WithServices(services => services.AddSingleton<IStartupFilter>(new SlowTransfers(TimeSpan.FromMilliseconds(300))));
        var options = new LoadOptions { Clients = 2, Transfers = 400, Accounts = 20, Rate = 200, OpenLoop = true, MaxInFlight = 40, PoliteShare = 0.5, Seed = 13 };

        var summary = await new LoadRunner(slow.CreateClient(), options, slow.Server.CreateHandler()).RunAsync();

        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.True(summary.OpenLoop);
        Assert.InRange(summary.PeakInFlight, 10, 40);
        Assert.True(summary.DroppedByGenerator > 0, "200/s held 300 ms each needs about 60 in flight: the cap of 40 should have dropped some");
        Assert.Equal(400, summary.Transfers + summary.DroppedByGenerator);
        Assert.Equal(summary.Transfers, summary.Committed + summary.RejectedByReason.Values.Sum() + summary.GaveUp);
    }

    /// <summary>
    /// Polite clients that outnumber their bulkhead (16 clients, 2 places and 2 waiting, every
    /// transfer held 100 ms) refuse the excess themselves: counted as <c>bulkhead_full</c> and given
    /// up, never sent, and the books balance.
    /// </summary>
    [Fact]
    public async Task Polite_clients_beyond_their_bulkhead_refuse_their_own_transfers_and_the_books_balance()
    {
        await using var slow = api.WithServices(services => services.AddSingleton<IStartupFilter>(new SlowTransfers(TimeSpan.FromMilliseconds(100))));
        var options = new LoadOptions { Clients = 16, Transfers = 300, Accounts = 20, PoliteShare = 1, BulkheadLimit = 2, ThrottleK = 0, Seed = 17 };

        var runner = new LoadRunner(slow.CreateClient(), options, slow.Server.CreateHandler());
        var summary = await runner.RunAsync();

        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.Equal(300, summary.Transfers);
        var refused = summary.ErrorsByKind.GetValueOrDefault("bulkhead_full");
        Assert.True(refused > 0, "16 clients against 4 places: some must have been refused");
        Assert.True(summary.GaveUp >= refused, $"{refused} refused but only {summary.GaveUp} given up");
        Assert.Equal(summary.Transfers, summary.Committed + summary.RejectedByReason.Values.Sum() + summary.GaveUp);
        // Only admitted transfers were sent: every refused one is missing from the attempts.
        Assert.True(runner.Stats.Attempts <= summary.Transfers - refused, $"{runner.Stats.Attempts} attempts for {summary.Transfers} transfers, {refused} refused");
    }

    /// <summary>
    /// In the open loop a mix of polite and impolite clients keeps its configured share of the
    /// offered transfers, although the polite ones refuse theirs at once (a full bulkhead) while
    /// the impolite ones wait for slow answers.
    /// </summary>
    [Fact]
    public async Task In_the_open_loop_the_polite_share_of_the_transfers_is_the_configured_one()
    {
        await using var slow = api.WithServices(services => services.AddSingleton<IStartupFilter>(new SlowTransfers(TimeSpan.FromMilliseconds(50))));
        var options = new LoadOptions { Clients = 16, Transfers = 320, Accounts = 20, Rate = 400, PoliteShare = 0.5, BulkheadLimit = 1, ThrottleK = 0, Seed = 23 };
        var impolite = new TransferCounter(slow.Server.CreateHandler());
        using var http = new HttpClient(impolite) { BaseAddress = slow.Server.BaseAddress };
        foreach (var header in slow.CreateClient().DefaultRequestHeaders)
        {
            http.DefaultRequestHeaders.TryAddWithoutValidation(header.Key, header.Value);
        }

        var summary = await new LoadRunner(http, options, slow.Server.CreateHandler()).RunAsync();

        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.Equal(320, summary.Transfers);
        // Transfers 0-7 of every 16 are polite: the impolite clients send exactly the other half,
        // each once (nothing rate-limits them here). Decided per worker, the polite workers took
        // most of the tickets and the impolite ones sent far fewer.
        Assert.Equal(160, impolite.Transfers);
    }

    /// <summary>Counts the money-moving requests that pass through it.</summary>
    private sealed class TransferCounter(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        private int _transfers;

        public int Transfers => Volatile.Read(ref _transfers);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post && request.RequestUri?.AbsolutePath == "/transfers")
            {
                Interlocked.Increment(ref _transfers);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }

    private sealed class SlowTransfers(TimeSpan delay) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                if (HttpMethods.IsPost(context.Request.Method) && context.Request.Path == "/transfers")
                {
                    await Task.Delay(delay, context.RequestAborted);
                }

                await nextMiddleware(context);
            });
            next(app);
        };
    }
}
