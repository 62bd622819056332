using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Transactor.Tests.Api;

[Collection(ApiTestGroup.Name)]
public sealed class OperationsApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    /// <summary>A silo with admission limits (or a batch call's deadline) it cannot use stops at start, naming the setting, instead of failing every movement.</summary>
    [Theory]
    [InlineData("Transactor:Transfers:MaxConcurrentTransfers", "0")]
    [InlineData("Transactor:Transfers:MaxQueuedTransfers", "-1")]
    [InlineData("Transactor:Transfers:BatchItemDeadline", "00:00:30")]
    [InlineData("Transactor:Transfers:BatchItemDeadline", "00:00:00")]
    public void A_ledger_configured_with_unusable_admission_limits_does_not_start(string key, string value)
    {
        using var misconfigured = api.WithSettings((key, value));

        var error = Assert.Throws<OptionsValidationException>(() => misconfigured.CreateClient());
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_report_requests_latency_outcomes_and_the_cluster()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        using var ok = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"}""", $"t-{Guid.NewGuid():N}"));
        using var rejected = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":5000,"currency":"USD"}""", $"t-{Guid.NewGuid():N}"));

        var metrics = await _client.GetFromJsonAsync<JsonElement>("/metrics");

        Assert.True(metrics.GetProperty("requests_total").GetInt64() >= 4);
        Assert.InRange(metrics.GetProperty("success_rate").GetDouble(), 0.0, 1.0);
        foreach (var name in new[] { "avg_latency_ms", "p50_latency_ms", "p90_latency_ms", "p99_latency_ms" })
        {
            Assert.True(metrics.GetProperty(name).GetDouble() > 0, name);
        }

        Assert.True(metrics.GetProperty("transfers_committed").GetInt64() >= 1);
        Assert.True(metrics.GetProperty("transfers_rejected").GetProperty("insufficient_funds").GetInt64() >= 1);
        Assert.Equal(0, metrics.GetProperty("in_flight").GetInt64());
        Assert.Equal(1, metrics.GetProperty("silos").GetInt32());
        Assert.True(metrics.GetProperty("activations").GetInt64() > 0);
    }

    [Theory]
    [InlineData("/health")]
    [InlineData("/alive")]
    [InlineData("/openapi/v1.json")]
    [InlineData("/scalar/v1")]
    [InlineData("/")]
    [InlineData("/vendor/uplot/uPlot.iife.min.js")]
    public async Task Operational_endpoints_answer(string path)
    {
        using var response = await _client.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task OpenAPI_document_describes_the_ledger_endpoints()
    {
        var document = await _client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();

        string[] expected = ["/accounts", "/accounts/{id}", "/accounts/{id}/deposits", "/accounts/{id}/withdrawals", "/transfers", "/transfer", "/transfers/{id}", "/metrics", "/events/transfers", "/events/metrics", "/runs", "/runs/{id}/cancel"];
        Assert.Empty(expected.Except(paths));
        Assert.DoesNotContain(paths, p => p.StartsWith("/dashboard", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Unknown_route_is_a_problem_not_an_empty_404()
    {
        using var response = await _client.GetAsync("/no/such/thing");

        await response.AssertProblem(HttpStatusCode.NotFound, "not_found");
    }
}
