using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Transactor.Tests.Api;
using Xunit.Abstractions;

namespace Transactor.Tests.Events;

/// <summary>
/// The dashboard at <c>/</c> in a real headless Chromium (Debian's <c>chromium</c>, through
/// Playwright with its <c>ExecutablePath</c>; no browser is downloaded), against the API on Kestrel.
/// </summary>
[Collection(LiveApiTestGroup.Name)]
public sealed class DashboardBrowserTests(LiveApiFixture api, ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task The_page_loads_live_with_no_console_errors_and_shows_the_silo()
    {
        await using var browser = await Browser.Launch();
        var (page, errors) = await browser.Open(api.BaseAddress);
        await Assertions.Expect(page.Locator("#conn")).ToHaveTextAsync("live", new() { Timeout = 15_000 });
        await Assertions.Expect(page.Locator("#silos tr").First).ToContainTextAsync("Active", new() { Timeout = 15_000 });
        await Assertions.Expect(page.Locator("#pressure-state")).ToHaveTextAsync("OK");
        await Assertions.Expect(page.Locator("#queue-limit")).Not.ToHaveTextAsync("0", new() { Timeout = 10_000 });
        await Assertions.Expect(page.Locator("#api-limit")).ToHaveTextAsync("256");
        await Assertions.Expect(page.Locator("#api-limit-mode")).ToHaveTextAsync("fixed");
        await Assertions.Expect(page.Locator("#chaos")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#dashboard-link")).ToBeVisibleAsync();
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Without_a_key_the_page_asks_for_one_and_goes_live_once_it_is_given()
    {
        await using var browser = await Browser.Launch();
        var (page, _) = await browser.Open(api.BaseAddress, key: null);
        await Assertions.Expect(page.Locator("#key-form")).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Assertions.Expect(page.Locator("#key-note")).ToHaveTextAsync("This ledger needs an API key.");
        await Assertions.Expect(page.Locator("#conn")).Not.ToHaveTextAsync("live");

        await page.FillAsync("#key-input", ApiFixture.AdminKey);
        await page.ClickAsync("#key-form button");
        await Assertions.Expect(page.Locator("#conn")).ToHaveTextAsync("live", new() { Timeout = 15_000 });
        await Assertions.Expect(page.Locator("#key-form")).ToBeHiddenAsync();
    }

    [Fact]
    public async Task Plus_10k_moves_the_figure_and_the_log_reaches_100_percent_with_balanced_books_and_a_second_viewer_sees_it()
    {
        await using var browser = await Browser.Launch();
        var (page, errors) = await browser.Open(api.BaseAddress);
        var (viewer, viewerErrors) = await browser.Open(api.BaseAddress);
        await Assertions.Expect(page.Locator("#conn")).ToHaveTextAsync("live", new() { Timeout = 15_000 });
        await Assertions.Expect(viewer.Locator("#conn")).ToHaveTextAsync("live", new() { Timeout = 15_000 });

        var name = $"browser {Guid.NewGuid():N}"[..16];
        await page.FillAsync("#run-accounts", "200");
        await page.FillAsync("#run-name", name);
        // Watched from before the click: the figure goes back to 0 once the run has ended.
        var figureMoved = page.WaitForFunctionAsync("() => Number(document.getElementById('tps').textContent.replace(/,/g, '')) > 0", null, new() { Timeout = (float)RunTimeout.TotalMilliseconds });
        await page.ClickAsync("button[data-count='10000']");

        var run = page.Locator(".run").Filter(new() { HasText = name });
        // The page under load (the README's picture, with TRANSACTOR_SCREENSHOT_DIR=docs/images).
        await Assertions.Expect(run.Locator(".run-progress")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^([5-9][0-9]|100) %$"), new() { Timeout = (float)RunTimeout.TotalMilliseconds });
        await Browser.Screenshot(page, output);
        await Assertions.Expect(run.Locator(".run-progress")).ToHaveTextAsync("100 %", new() { Timeout = (float)RunTimeout.TotalMilliseconds });
        await Assertions.Expect(run.Locator(".run-books")).ToContainTextAsync("books balance", new() { Timeout = 15_000 });
        await figureMoved;
        await Assertions.Expect(page.Locator("#log-body tr").Filter(new() { HasText = "run-" }).First).ToBeVisibleAsync();
        Assert.True(await page.Locator("#log-body tr").CountAsync() <= 200, "the log keeps at most 200 rows");

        // The other viewer saw the same run, by its name, end the same way.
        var seen = viewer.Locator(".run").Filter(new() { HasText = name });
        await Assertions.Expect(seen.Locator(".run-progress")).ToHaveTextAsync("100 %", new() { Timeout = 15_000 });
        await Assertions.Expect(seen.Locator(".run-books")).ToContainTextAsync("books balance");

        using var http = api.Http();
        var runs = await http.GetFromJsonAsync<JsonElement>("runs");
        var ended = runs.EnumerateArray().Single(r => r.GetProperty("name").GetString() == name);
        Assert.Equal("done", ended.GetProperty("state").GetString());
        Assert.Equal(10_000, ended.GetProperty("done").GetInt64());
        Assert.True(ended.GetProperty("books").GetProperty("balanced").GetBoolean());
        output.WriteLine($"+10k run: {ended.GetProperty("per_second").GetDouble()} transfers/s over {ended.GetProperty("seconds").GetDouble()} s");

        Assert.Empty(errors);
        Assert.Empty(viewerErrors);
    }

    [Fact]
    public async Task An_account_balance_on_the_page_equals_the_API_and_follows_its_movements()
    {
        using var http = api.Http();
        var from = await http.OpenAccount(50_000);
        var to = await http.OpenAccount(1_000);
        await using var browser = await Browser.Launch();
        var (page, errors) = await browser.Open(api.BaseAddress);
        await Assertions.Expect(page.Locator("#conn")).ToHaveTextAsync("live", new() { Timeout = 15_000 });
        await page.FillAsync("#account-id", to);
        await page.ClickAsync("#account-lookup");
        var available = page.Locator("#account-available");
        await Assertions.Expect(available).ToHaveAttributeAsync("data-minor", (await http.Available(to)).ToString(CultureInfo.InvariantCulture));

        for (var i = 0; i < 3; i++)
        {
            using var transfer = await http.SendAsync(Http.Post("transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":1234,"currency":"USD"}""", $"page-{Guid.NewGuid():N}"));
            Assert.Equal(System.Net.HttpStatusCode.Created, transfer.StatusCode);
        }

        var expected = await http.Available(to);
        Assert.Equal(1_000 + 3 * 1_234, expected);
        await Assertions.Expect(available).ToHaveAttributeAsync("data-minor", expected.ToString(CultureInfo.InvariantCulture), new() { Timeout = 10_000 });
        await Assertions.Expect(available).ToHaveTextAsync("47.02");
        Assert.Empty(errors);
    }

    /// <summary>One headless Chromium with pages that record console errors and uncaught exceptions.</summary>
    internal sealed class Browser : IAsyncDisposable
    {
        private readonly IPlaywright _playwright;
        private readonly IBrowser _browser;

        private Browser(IPlaywright playwright, IBrowser browser)
        {
            _playwright = playwright;
            _browser = browser;
        }

        public static async Task<Browser> Launch()
        {
            var playwright = await Playwright.CreateAsync();
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ChromiumPath(),
                Headless = true,
                Args = ["--no-sandbox"],
            });
            return new Browser(playwright, browser);
        }

        /// <summary>A page in a context of its own (as a second user would have), opened at <paramref name="address"/>.</summary>
        public async Task<(IPage Page, List<string> Errors)> Open(Uri address, string? key = ApiFixture.AdminKey)
        {
            var context = await _browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1600, Height = 1200 } });
            var page = await context.NewPageAsync();
            var errors = new List<string>();
            page.Console += (_, message) =>
            {
                if (message.Type == "error")
                {
                    lock (errors)
                    {
                        errors.Add(message.Text);
                    }
                }
            };
            page.PageError += (_, error) =>
            {
                lock (errors)
                {
                    errors.Add(error);
                }
            };
            // The key as a fragment, as a user would follow a link: the page keeps it for the tab.
            await page.GotoAsync(key is null ? address.ToString() : $"{address}#key={key}");
            return (page, errors);
        }

        public static async Task Screenshot(IPage page, ITestOutputHelper output)
        {
            var path = Path.Combine(Environment.GetEnvironmentVariable("TRANSACTOR_SCREENSHOT_DIR") ?? Path.GetTempPath(), "dashboard.png");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
            output.WriteLine($"Screenshot: {path}");
        }

        public async ValueTask DisposeAsync()
        {
            await _browser.DisposeAsync();
            _playwright.Dispose();
        }

        private static string ChromiumPath() =>
            Environment.GetEnvironmentVariable("TRANSACTOR_CHROMIUM") is { Length: > 0 } configured ? configured
            : File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium"
            : throw new InvalidOperationException("Install Chromium (Debian: apt-get install chromium; .ci/run does) or set TRANSACTOR_CHROMIUM to its path.");
    }
}

/// <summary>Chaos mode on the page: on a silo that injects faults, the page says so in its header, with the silo and the count.</summary>
public sealed class ChaosDashboardBrowserTests(ChaosLiveApiFixture api) : IClassFixture<ChaosLiveApiFixture>
{
    [Fact]
    public async Task With_chaos_mode_on_the_page_names_the_silo_and_counts_its_faults()
    {
        await using var browser = await DashboardBrowserTests.Browser.Launch();
        var (page, errors) = await browser.Open(api.BaseAddress);
        await Assertions.Expect(page.Locator("#conn")).ToHaveTextAsync("live", new() { Timeout = 15_000 });
        await Assertions.Expect(page.Locator("#silos tr").First).ToContainTextAsync("Active", new() { Timeout = 15_000 });
        var pill = page.Locator("#chaos");
        await Assertions.Expect(pill).ToBeVisibleAsync(new() { Timeout = 15_000 });
        var silo = await page.Locator("#silos tr td").First.TextContentAsync();
        await Assertions.Expect(pill).ToContainTextAsync("CHAOS MODE");
        await Assertions.Expect(pill).ToContainTextAsync(silo!.Trim());
        await Assertions.Expect(pill).ToContainTextAsync("faults injected");
        await Assertions.Expect(pill).Not.ToContainTextAsync("disarmed");

        // This API runs with the Orleans Dashboard off: the page does not offer a link to its 404.
        await Assertions.Expect(page.Locator("#dashboard-link")).ToBeHiddenAsync();
        Assert.Empty(errors);
    }

    /// <summary>The same figures without a browser: <c>/events/metrics</c> names the chaos silo, armed, and the API's limit.</summary>
    [Fact]
    public async Task With_chaos_mode_on_the_metrics_stream_names_the_silo_armed()
    {
        using var http = api.Http();
        using var stream = await Sse.Open(http, "events/metrics");
        var metrics = (await stream.Read(1, TimeSpan.FromSeconds(15))).Single(e => e.Type == "metrics").Data;

        var chaos = metrics.GetProperty("chaos");
        Assert.Equal(JsonValueKind.Object, chaos.ValueKind);
        Assert.Single(chaos.GetProperty("silos").EnumerateArray());
        Assert.True(chaos.GetProperty("armed").GetBoolean());
        Assert.True(chaos.GetProperty("faults").GetInt64() >= 0);
        Assert.Equal(256, metrics.GetProperty("api_limit").GetInt32());
        Assert.Equal("Fixed", metrics.GetProperty("api_limit_mode").GetString());
        Assert.False(metrics.GetProperty("orleans_dashboard").GetBoolean());
    }
}
