using System.Net;
using System.Text.Json;

namespace Transactor.Tests.Api;

/// <summary>Adaptive admission through the embedded API: the limits move with latency, show in /metrics, and money stays conserved.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class AdaptiveAdmissionApiTests(ApiFixture fixture)
{
    [Fact]
    public async Task Latency_over_target_lowers_the_api_and_silo_limits_shown_in_metrics_and_money_is_conserved()
    {
        // A target no transfer can meet: every judged window is over it, so both limits fall to their floor.
        using var factory = fixture.WithSettings(
            ("Transactor:Api:MaxConcurrentRequests", "64"),
            ("Transactor:Api:Admission:Mode", "Adaptive"),
            ("Transactor:Api:Admission:MinLimit", "2"),
            ("Transactor:Api:Admission:TargetLatency", "00:00:00.000001"),
            ("Transactor:Api:Admission:Window", "00:00:00.020"),
            ("Transactor:Api:Admission:MinSamplesPerWindow", "5"),
            ("Transactor:Transfers:MaxConcurrentTransfers", "32"),
            ("Transactor:Transfers:Admission:Mode", "Adaptive"),
            ("Transactor:Transfers:Admission:MinLimit", "1"),
            ("Transactor:Transfers:Admission:TargetLatency", "00:00:00.000001"),
            ("Transactor:Transfers:Admission:Window", "00:00:00.020"),
            ("Transactor:Transfers:Admission:MinSamplesPerWindow", "5"));
        using var client = factory.CreateClient();

        var before = await Admission(client);
        Assert.Equal("Adaptive", before.GetProperty("api_mode").GetString());
        Assert.Equal(64, before.GetProperty("api_limit").GetInt32());
        Assert.Equal(32, before.GetProperty("silo_limit").GetInt32());

        const long Funded = 1_000_000;
        var accounts = new List<string>();
        for (var i = 0; i < 8; i++)
        {
            accounts.Add(await client.OpenAccount(Funded));
        }

        var statuses = await Task.WhenAll(Enumerable.Range(0, 400).Select(async i =>
        {
            var from = accounts[i % accounts.Count];
            var to = accounts[(i + 1) % accounts.Count];
            using var response = await client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":7,"currency":"USD"}""", $"adaptive-{i}-{Guid.NewGuid():N}"));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await response.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
            }
            else if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                // Waited in a standing queue past its bound (the API's QueueTimeout settings).
                await response.AssertProblem(HttpStatusCode.ServiceUnavailable, "queue_timeout");
                Assert.NotNull(response.Headers.RetryAfter);
            }

            return response.StatusCode;
        }));

        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.Created or HttpStatusCode.OK or HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable, $"unexpected status {(int)s}"));
        Assert.Contains(HttpStatusCode.Created, statuses);
        var after = await Admission(client);
        Assert.True(after.GetProperty("api_limit").GetInt32() is >= 2 and < 64, $"api limit {after.GetProperty("api_limit")} should have fallen from 64 toward 2");
        Assert.True(after.GetProperty("silo_limit").GetInt32() is >= 1 and < 32, $"silo limit {after.GetProperty("silo_limit")} should have fallen from 32 toward 1");
        Assert.Equal(0, after.GetProperty("api_in_flight").GetInt32());

        long total = 0;
        foreach (var account in accounts)
        {
            var available = await client.Available(account);
            Assert.True(available >= 0, $"{account} is negative: {available}");
            total += available;
        }

        Assert.Equal(Funded * accounts.Count, total);
    }

    private static async Task<JsonElement> Admission(HttpClient client)
    {
        var text = await client.GetStringAsync("/metrics");
        return JsonDocument.Parse(text).RootElement.GetProperty("admission").Clone();
    }
}
