using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Transactor.Tests.Api;
using Transactor.Tests.EndToEnd;

namespace Transactor.Tests.Postgres;

/// <summary>
/// The topology of the Aspire AppHost and scripts/run-cluster.sh, without either: three silo
/// processes and an API process on loopback, joined through PostgreSQL membership, configured only
/// by the environment variables the AppHost emits. Money moves through it over HTTP.
/// </summary>
[Collection(PostgresTestGroup.Name)]
public sealed class ClusterTopologyTests(PostgresFixture postgres)
{
    private const int Silos = 3;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    [Theory]
    [MemberData(nameof(PostgresCluster.StorageProviders), MemberType = typeof(PostgresCluster))]
    public async Task Three_silo_processes_and_an_API_on_PostgreSQL_move_money_and_keep_it_across_an_API_restart(string ledgerStorage)
    {
        var database = await postgres.Server.CreateDatabaseAsync("topology");
        var orleans = new Dictionary<string, string>
        {
            ["ConnectionStrings__transactordb"] = database,
            ["Orleans__ClusterId"] = "topology",
            ["Orleans__ServiceId"] = "transactor-topology",
        };
        // As the AppHost: the API (orleans.AsClient()) gets clustering only; silos also get storage and reminders.
        var client = new Dictionary<string, string>(orleans);
        foreach (var section in new[] { "Clustering", "GrainStorage__ledger", "Reminders" })
        {
            foreach (var target in section == "Clustering" ? new[] { orleans, client } : [orleans])
            {
                // Clustering and reminders stay on Orleans' ADO.NET providers; the ledger's storage is the theory's.
                target[$"Orleans__{section}__ProviderType"] = section == "GrainStorage__ledger" ? ledgerStorage : "AdoNet";
                target[$"Orleans__{section}__Invariant"] = "Npgsql";
                target[$"Orleans__{section}__ConnectionName"] = "transactordb";
            }
        }

        var processes = new List<ProcessHost>();
        try
        {
            for (var i = 0; i < Silos; i++)
            {
                var siloHttp = ApiFixture.FreePort();
                var silo = ProcessHost.Start("Transactor.Silo", new Dictionary<string, string>(orleans)
                {
                    ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{siloHttp}",
                    ["Orleans__Endpoints__AdvertisedIPAddress"] = "127.0.0.1",
                    ["Orleans__Endpoints__SiloPort"] = Str(ApiFixture.FreePort()),
                    ["Orleans__Endpoints__GatewayPort"] = Str(ApiFixture.FreePort()),
                });
                processes.Add(silo);
                await silo.WaitUntilHealthy($"http://127.0.0.1:{siloHttp}/health", StartTimeout);
            }

            var apiUrl = $"http://127.0.0.1:{ApiFixture.FreePort()}";
            var api = ProcessHost.Start("Transactor.Api", new Dictionary<string, string>(client) { ["ASPNETCORE_URLS"] = apiUrl, [ApiFixture.AdminKeySetting.Key] = ApiFixture.AdminKeySetting.Value });
            processes.Add(api);
            await api.WaitUntilHealthy($"{apiUrl}/health", StartTimeout);

            using var http = ApiFixture.AdminClient(apiUrl);
            var metrics = await http.GetFromJsonAsync<JsonElement>("/metrics");
            Assert.Equal(Silos, metrics.GetProperty("silos").GetInt32());

            var accounts = new List<string>();
            for (var i = 0; i < 6; i++)
            {
                accounts.Add(await http.OpenAccount(1_000));
            }

            for (var i = 0; i < 30; i++)
            {
                var json = $$"""{"from":"{{accounts[i % 6]}}","to":"{{accounts[(i + 1) % 6]}}","amount":{{10 + i}},"currency":"USD"}""";
                using var response = await http.SendAsync(Http.Post("/transfers", json, $"topology-{i}"));
                Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
            }

            var before = new List<long>();
            foreach (var id in accounts)
            {
                before.Add(await http.Available(id));
            }

            Assert.Equal(6_000, before.Sum());

            // A new API process finds the same cluster and the same books.
            await api.DisposeAsync();
            processes.Remove(api);
            var api2 = ProcessHost.Start("Transactor.Api", new Dictionary<string, string>(client) { ["ASPNETCORE_URLS"] = apiUrl, [ApiFixture.AdminKeySetting.Key] = ApiFixture.AdminKeySetting.Value });
            processes.Add(api2);
            await api2.WaitUntilHealthy($"{apiUrl}/health", StartTimeout);
            var after = new List<long>();
            foreach (var id in accounts)
            {
                after.Add(await http.Available(id));
            }

            Assert.Equal(before, after);
            using var replay = await http.SendAsync(Http.Post("/transfers", $$"""{"from":"{{accounts[0]}}","to":"{{accounts[1]}}","amount":10,"currency":"USD"}""", "topology-0"));
            Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        }
        finally
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
            }
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
