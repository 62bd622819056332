using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Transactor.Tests.Api;
using Transactor.Tests.EndToEnd;
using Xunit.Abstractions;

namespace Transactor.Tests.AppHost;

/// <summary>The AppHost as its users start it: a process, its console, its dashboard in a browser, its published manifest.</summary>
[Collection(AppHostTestGroup.Name)]
public sealed partial class AppHostProcessTests(ITestOutputHelper output)
{
    private static readonly string[] s_runningResources = ["postgres", "transactordb", "silo1", "silo2", "silo3", "api"];

    [Fact]
    public async Task Published_manifest_models_postgres_as_a_container_and_one_project_per_silo_on_ports_of_its_own()
    {
        var folder = Directory.CreateTempSubdirectory("transactor-manifest-").FullName;
        try
        {
            var manifestPath = Path.Combine(folder, "manifest.json");
            await using (var publish = ProcessHost.StartAppHost(new Dictionary<string, string>(), ["--publisher", "manifest", "--output-path", manifestPath]))
            {
                var exit = await publish.WaitForExitAsync(TimeSpan.FromMinutes(2));
                Assert.True(exit == 0, $"publish exited with {exit}:\n{publish.Output}");
            }

            using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(manifestPath));
            var resources = manifest.RootElement.GetProperty("resources");
            string Type(string name) => resources.GetProperty(name).GetProperty("type").GetString()!;

            // PostgreSQL is the container (Azure replaces it, docs/deploy.md), never the local executable.
            Assert.Equal("container.v0", Type("postgres"));
            Assert.Equal("{postgres.connectionString};Database=transactordb", resources.GetProperty("transactordb").GetProperty("connectionString").GetString());
            Assert.DoesNotContain(resources.EnumerateObject(), resource => resource.Value.GetProperty("type").GetString()!.StartsWith("executable", StringComparison.Ordinal));
            Assert.False(resources.TryGetProperty("loadgen", out _), "the load generator is never deployed");

            foreach (var (silo, index) in AspireTopology.Silos.Select((silo, index) => (silo, index)))
            {
                Assert.Equal("project.v0", Type(silo));
                var bindings = resources.GetProperty(silo).GetProperty("bindings");
                // One app per silo, each with its own ports (Orleans' guidance for Container Apps), as in run-cluster.sh.
                Assert.Equal(11111 + index, bindings.GetProperty("orleans-silo").GetProperty("targetPort").GetInt32());
                Assert.Equal(30000 + index, bindings.GetProperty("orleans-gateway").GetProperty("targetPort").GetInt32());
                Assert.Equal("http", bindings.GetProperty("http").GetProperty("scheme").GetString());
                var env = resources.GetProperty(silo).GetProperty("env");
                Assert.Equal("transactor", env.GetProperty("Orleans__ClusterId").GetString());
                Assert.Equal("transactor", env.GetProperty("Orleans__ServiceId").GetString());
                foreach (var provider in new[] { "Clustering", "Reminders", "GrainStorage__ledger" })
                {
                    Assert.Equal(provider == "GrainStorage__ledger" ? "Batched" : "AdoNet", env.GetProperty($"Orleans__{provider}__ProviderType").GetString());
                    Assert.Equal("Npgsql", env.GetProperty($"Orleans__{provider}__Invariant").GetString());
                    Assert.Equal("transactordb", env.GetProperty($"Orleans__{provider}__ConnectionName").GetString());
                }

                Assert.Equal("{transactordb.connectionString}", env.GetProperty("ConnectionStrings__transactordb").GetString());
            }

            var api = resources.GetProperty("api");
            Assert.Equal("project.v0", api.GetProperty("type").GetString());
            Assert.True(api.GetProperty("bindings").GetProperty("http").GetProperty("external").GetBoolean());
            Assert.Equal("AdoNet", api.GetProperty("env").GetProperty("Orleans__Clustering__ProviderType").GetString());
            Assert.False(api.GetProperty("env").TryGetProperty("Orleans__GrainStorage__ledger__ProviderType", out _), "the API is a client: no grain storage");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Plain_run_without_a_trusted_certificate_serves_the_dashboard_on_http_with_every_resource_running()
    {
        var dataRoot = AspireTopology.CreateDataRoot();
        var (dashboardHttp, dashboardHttps, otlp, resourceService, apiPort) =
            (ApiFixture.FreePort(), ApiFixture.FreePort(), ApiFixture.FreePort(), ApiFixture.FreePort(), ApiFixture.FreePort());

        // What the first launch profile (https) sets, on free ports; this machine has no trusted development certificate.
        var environment = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"https://localhost:{dashboardHttps};http://localhost:{dashboardHttp}",
            ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"https://localhost:{otlp}",
            ["ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"] = $"https://localhost:{resourceService}",
        };
        string[] arguments = ["--Transactor:Postgres=local", $"--Transactor:PostgresDataDirectory={dataRoot}", $"--Transactor:ApiPort={apiPort}", $"--Transactor:Auth:AdminKey={ApiFixture.AdminKey}"];
        var clock = Stopwatch.StartNew();
        var appHost = ProcessHost.StartAppHost(environment, arguments);
        try
        {
            var login = await WaitForLine(appHost, LoginLine(), TimeSpan.FromMinutes(2));
            Assert.StartsWith($"http://localhost:{dashboardHttp}/login?t=", login, StringComparison.Ordinal);
            Assert.Contains("No trusted ASP.NET Core development certificate", appHost.Output, StringComparison.Ordinal);
            Assert.Contains("Ledger storage: a local PostgreSQL server started by the AppHost", appHost.Output, StringComparison.Ordinal);

            // The API starts last (it waits for the silos, which wait for the database).
            await appHost.WaitUntilHealthy($"http://localhost:{apiPort}/health", TimeSpan.FromMinutes(4));
            output.WriteLine($"AppHost process start to API healthy: {clock.Elapsed.TotalSeconds:F1} s");
            using var http = ApiFixture.AdminClient($"http://localhost:{apiPort}");
            var from = await http.OpenAccount(10_000);
            var to = await http.OpenAccount();
            using (var transfer = await http.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":2500,"currency":"USD"}""", $"browser-{Guid.NewGuid():N}")))
            {
                Assert.Equal(System.Net.HttpStatusCode.Created, transfer.StatusCode);
            }

            Assert.Equal(3, (await http.GetFromJsonAsync<JsonElement>("/metrics")).GetProperty("silos").GetInt32());

            using var playwright = await Playwright.CreateAsync();
            await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ChromiumPath(),
                Headless = true,
                Args = ["--no-sandbox"],
            });
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1600, Height = 900 } });
            await page.GotoAsync(login);
            foreach (var resource in s_runningResources)
            {
                // A row of the resources grid: the resource's name and its state, Running.
                var row = page.GetByRole(AriaRole.Row).Filter(new LocatorFilterOptions { HasText = resource }).Filter(new LocatorFilterOptions { HasText = "Running" });
                await Assertions.Expect(row.First).ToBeVisibleAsync(new LocatorAssertionsToBeVisibleOptions { Timeout = 60_000 });
            }

            await Assertions.Expect(page.GetByRole(AriaRole.Row).Filter(new LocatorFilterOptions { HasText = "loadgen" }).First).ToBeVisibleAsync();
            var screenshot = Path.Combine(Environment.GetEnvironmentVariable("TRANSACTOR_SCREENSHOT_DIR") ?? Path.GetTempPath(), "aspire-dashboard.png");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot });
            output.WriteLine($"Screenshot: {screenshot}");
        }
        finally
        {
            // Ctrl+C, as a user stops it: the AppHost stops every resource, PostgreSQL included.
            await appHost.SignalAsync("INT");
            var exit = await appHost.WaitForExitAsync(TimeSpan.FromMinutes(1));
            await appHost.DisposeAsync();
            output.WriteLine($"AppHost exited with {exit?.ToString(CultureInfo.InvariantCulture) ?? "(killed)"} after Ctrl+C");
            AspireTopology.DeleteDataRoot(dataRoot);
        }
    }

    private static string ChromiumPath() =>
        Environment.GetEnvironmentVariable("TRANSACTOR_CHROMIUM") is { Length: > 0 } configured ? configured
        : File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium"
        : throw new InvalidOperationException("Install Chromium (Debian: apt-get install chromium; .ci/run does) or set TRANSACTOR_CHROMIUM to its path.");

    private static async Task<string> WaitForLine(ProcessHost host, Regex pattern, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (pattern.Match(host.Output) is { Success: true } match)
            {
                return match.Groups[1].Value;
            }

            if (host.HasExited)
            {
                break;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"No line matching {pattern} from the AppHost:\n{host.Output}");
    }

    [GeneratedRegex(@"Login to the dashboard at (\S+)")]
    private static partial Regex LoginLine();
}
