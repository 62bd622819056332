using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Transactor.Tests.Api;
using Transactor.Tests.EndToEnd;

namespace Transactor.Tests.Postgres;

/// <summary>
/// A silo process and an API process on a PostgreSQL server of their own, which the test stops as a
/// crash would (<c>pg_ctl stop -m immediate</c>) and starts again: while it is down every request
/// that needs it answers 503 <c>storage_unavailable</c> with <c>Retry-After</c>, readiness fails and
/// liveness holds; once it is back, money moves again and the refused requests changed nothing.
/// </summary>
public sealed class DatabaseOutageTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_stopped_database_answers_503_storage_unavailable_and_changes_nothing_and_a_silo_still_stops_promptly()
    {
        await using var postgres = await PostgresServer.StartAsync();
        var database = await postgres.CreateDatabaseAsync("outage");
        var client = new Dictionary<string, string>
        {
            ["ConnectionStrings__transactordb"] = database,
            ["Orleans__ClusterId"] = "outage",
            ["Orleans__ServiceId"] = "transactor-outage",
            ["Orleans__Clustering__ProviderType"] = "AdoNet",
            ["Orleans__Clustering__Invariant"] = "Npgsql",
            ["Orleans__Clustering__ConnectionName"] = "transactordb",
        };
        var siloHttp = $"http://127.0.0.1:{ApiFixture.FreePort()}";
        var silo = new Dictionary<string, string>(client)
        {
            ["ASPNETCORE_URLS"] = siloHttp,
            ["Orleans__Endpoints__AdvertisedIPAddress"] = "127.0.0.1",
            ["Orleans__Endpoints__SiloPort"] = Str(ApiFixture.FreePort()),
            ["Orleans__Endpoints__GatewayPort"] = Str(ApiFixture.FreePort()),
            // Short, so that the bounded stop below is quick to see; the defaults are 15 s and 5 s.
            ["Transactor__Hosting__StopTimeout"] = "00:00:03",
            ["Transactor__Hosting__ExitAfter"] = "00:00:02",
        };
        foreach (var section in new[] { "GrainStorage__ledger", "Reminders" })
        {
            silo[$"Orleans__{section}__ProviderType"] = "AdoNet";
            silo[$"Orleans__{section}__Invariant"] = "Npgsql";
            silo[$"Orleans__{section}__ConnectionName"] = "transactordb";
        }

        await using var siloProcess = ProcessHost.Start("Transactor.Silo", silo);
        await siloProcess.WaitUntilHealthy($"{siloHttp}/health", StartTimeout);
        var apiUrl = $"http://127.0.0.1:{ApiFixture.FreePort()}";
        await using var api = ProcessHost.Start("Transactor.Api", new Dictionary<string, string>(client) { ["ASPNETCORE_URLS"] = apiUrl, [ApiFixture.AdminKeySetting.Key] = ApiFixture.AdminKeySetting.Value });
        await api.WaitUntilHealthy($"{apiUrl}/health", StartTimeout);

        using var http = ApiFixture.AdminClient(apiUrl, TimeSpan.FromSeconds(30));
        var alice = await http.OpenAccount(10_000);
        var bob = await http.OpenAccount(10_000);

        await postgres.StopImmediatelyAsync();
        var refused = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var key = $"outage-{i}";
            refused.Add(key);
            using var transfer = await http.SendAsync(Http.Post("/transfers", Transfer(alice, bob, 100), key));
            await AssertStorageUnavailable(transfer, $"POST /transfers with key {key}");
        }

        using (var open = await http.SendAsync(Http.Post("/accounts", """{"id":"opened-while-down","currency":"USD"}""")))
        {
            await AssertStorageUnavailable(open, "POST /accounts");
        }

        using (var read = await http.GetAsync("/accounts/never-opened"))
        {
            await AssertStorageUnavailable(read, "GET /accounts/never-opened");
        }

        foreach (var (name, url) in new[] { ("api", apiUrl), ("silo", siloHttp) })
        {
            using var health = await http.GetAsync($"{url}/health");
            Assert.True(health.StatusCode == HttpStatusCode.ServiceUnavailable, $"{name} /health with the database down: {(int)health.StatusCode} {await health.Content.ReadAsStringAsync()}");
            using var alive = await http.GetAsync($"{url}/alive");
            Assert.True(alive.StatusCode == HttpStatusCode.OK, $"{name} /alive with the database down: {(int)alive.StatusCode}");
        }

        Assert.DoesNotContain("CodecNotFoundException", api.Output, StringComparison.Ordinal);
        Assert.Contains("Npgsql.NpgsqlException", api.Output, StringComparison.Ordinal);

        await postgres.StartAgainAsync();
        await api.WaitUntilHealthy($"{apiUrl}/health", StartTimeout);
        await siloProcess.WaitUntilHealthy($"{siloHttp}/health", StartTimeout);
        var moved = await TransferWithRetries(http, Transfer(alice, bob, 250), "after-outage");
        Assert.True(moved.StatusCode == HttpStatusCode.Created, $"a transfer once the database is back: {(int)moved.StatusCode} {await moved.Content.ReadAsStringAsync()}");
        moved.Dispose();

        // The refused requests recorded nothing and moved nothing: only the last transfer did.
        Assert.Equal(9_750, await http.Available(alice));
        Assert.Equal(10_250, await http.Available(bob));
        foreach (var key in refused)
        {
            using var lookup = await http.GetAsync($"/transfers/{key}");
            Assert.True(lookup.StatusCode == HttpStatusCode.NotFound, $"GET /transfers/{key}: {(int)lookup.StatusCode} {await lookup.Content.ReadAsStringAsync()}");
        }

        Assert.DoesNotContain("Participant check thread has not completed", siloProcess.Output, StringComparison.Ordinal);

        // A graceful stop with the database down ends within the configured bound (3 s + 2 s here),
        // not after Orleans' minute-long retries of its membership table.
        await postgres.StopImmediatelyAsync();
        var stopping = Stopwatch.StartNew();
        await siloProcess.SignalAsync("TERM");
        var exit = await siloProcess.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.True(exit is not null, $"the silo still runs {stopping.Elapsed} after SIGTERM with the database down:\n{siloProcess.Output}");
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(12), $"the silo took {stopping.Elapsed} to stop");
    }

    private static async Task AssertStorageUnavailable(HttpResponseMessage response, string request)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{request} with the database down: {(int)response.StatusCode} {body}");
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("storage_unavailable", problem.GetProperty("code").GetString());
        Assert.Equal("/problems/storage_unavailable", problem.GetProperty("type").GetString());
        Assert.True(response.Headers.RetryAfter?.Delta is { } delay && delay > TimeSpan.Zero, $"{request}: no Retry-After in {response.Headers}");
    }

    /// <summary>The first requests after the database returns may meet connections it broke; a retry with the same key is safe.</summary>
    private static async Task<HttpResponseMessage> TransferWithRetries(HttpClient http, string json, string key)
    {
        for (var attempt = 1; ; attempt++)
        {
            var response = await http.SendAsync(Http.Post("/transfers", json, key));
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable || attempt == 20)
            {
                return response;
            }

            response.Dispose();
            await Task.Delay(500);
        }
    }

    private static string Transfer(string from, string to, long amount) =>
        $$"""{"from":"{{from}}","to":"{{to}}","amount":{{amount}},"currency":"USD"}""";

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
