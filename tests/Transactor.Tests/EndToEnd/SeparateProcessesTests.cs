using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Transactor.Tests.Api;

namespace Transactor.Tests.EndToEnd;

/// <summary>The silo host and the API as separate processes on loopback, the API a pure Orleans client.</summary>
public sealed class SeparateProcessesTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Money_moves_over_HTTP_through_an_API_process_and_a_silo_process()
    {
        var (siloPort, gatewayPort, siloHttp, apiHttp) = (ApiFixture.FreePort(), ApiFixture.FreePort(), ApiFixture.FreePort(), ApiFixture.FreePort());
        var cluster = new Dictionary<string, string>
        {
            ["Orleans__ClusterId"] = "e2e",
            ["Orleans__ServiceId"] = "transactor-e2e",
            ["Orleans__Clustering__ProviderType"] = "Development",
        };
        await using var silo = ProcessHost.Start("Transactor.Silo", new Dictionary<string, string>(cluster)
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{siloHttp}",
            ["Orleans__Endpoints__AdvertisedIPAddress"] = "127.0.0.1",
            ["Orleans__Endpoints__SiloPort"] = Str(siloPort),
            ["Orleans__Endpoints__GatewayPort"] = Str(gatewayPort),
        });
        await silo.WaitUntilHealthy($"http://127.0.0.1:{siloHttp}/health", StartTimeout);
        await using var api = ProcessHost.Start("Transactor.Api", new Dictionary<string, string>(cluster)
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{apiHttp}",
            ["Orleans__Clustering__Gateways__0"] = $"127.0.0.1:{gatewayPort}",
            [ApiFixture.AdminKeySetting.Key] = ApiFixture.AdminKeySetting.Value,
        });
        await api.WaitUntilHealthy($"http://127.0.0.1:{apiHttp}/health", StartTimeout);

        using var http = ApiFixture.AdminClient($"http://127.0.0.1:{apiHttp}");
        var from = await http.OpenAccount(5_000);
        var to = await http.OpenAccount();
        var key = $"e2e-{Guid.NewGuid():N}";
        var json = $$"""{"from":"{{from}}","to":"{{to}}","amount":1234,"currency":"USD"}""";

        // The settlement reaches the API process's event stream from the silo process (grain observers
        // across processes), once the silo has read the API's subscription: its load arrives with it.
        using (var metricsStream = await Events.Sse.Open(http, "/events/metrics"))
        {
            while ((await metricsStream.Read(1, StartTimeout)).Single() is var m && (m.Type != "metrics" || m.Data.GetProperty("places").GetInt64() == 0))
            {
            }
        }

        using var events = await Events.Sse.Open(http, $"/events/transfers?account={to}");
        using var transfer = await http.SendAsync(Http.Post("/transfers", json, key));
        using var retry = await http.SendAsync(Http.Post("/transfers", json, key));

        Assert.True(HttpStatusCode.Created == transfer.StatusCode, await transfer.Content.ReadAsStringAsync() + "\n" + api.Output);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal((3_766L, 1_234L), (await http.Available(from), await http.Available(to)));
        var settled = (await events.Read(1, TimeSpan.FromSeconds(10))).Single();
        Assert.Equal((key, "committed", 1_234L), (settled.Data.GetProperty("id").GetString(), settled.Data.GetProperty("status").GetString(), settled.Data.GetProperty("to_available").GetInt64()));
        // Ended by the silo process (its address names its silo port), not by the API process.
        Assert.Contains($"127.0.0.1:{siloPort}:", settled.Data.GetProperty("silo").GetString(), StringComparison.Ordinal);
        var metrics = await http.GetFromJsonAsync<JsonElement>("/metrics");
        Assert.Equal(1, metrics.GetProperty("silos").GetInt32());
        Assert.Contains("client of Orleans cluster e2e", api.Output, StringComparison.Ordinal);
        using var dashboard = await http.GetAsync($"http://127.0.0.1:{siloHttp}/dashboard/");
        Assert.Equal(HttpStatusCode.OK, dashboard.StatusCode);

        // The API's build output, run in Production as scripts/run-cluster.sh runs it, serves the
        // live dashboard page and its vendored script (from the project's wwwroot).
        using var page = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<html", await page.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        using var script = await http.GetAsync("/vendor/uplot/uPlot.iife.min.js");
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
