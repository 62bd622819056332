using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Transactor.Tests.Api;

namespace Transactor.Tests.EndToEnd;

/// <summary>Runs README.md's curl walk-through, as written, against a started API, so the front door cannot rot.</summary>
public sealed partial class ReadmeWalkthroughTests
{
    [Fact]
    public async Task The_README_walkthrough_works_as_written()
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(Repo.Root, "README.md"));
        var blocks = WalkthroughBlock().Matches(readme);
        Assert.True(blocks.Count > 0, "README.md has no ```sh block after a <!-- walkthrough --> marker");
        // Later blocks continue the first (pending transfers): one script, in order.
        var script = string.Concat(blocks.Select(b => b.Groups["script"].Value));
        Assert.Contains("TRANSACTOR=http://localhost:5090", script, StringComparison.Ordinal);

        var (http, silo, gateway) = (ApiFixture.FreePort(), ApiFixture.FreePort(), ApiFixture.FreePort());
        var url = $"http://127.0.0.1:{http}";
        await using var api = ProcessHost.Start("Transactor.Api", new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = url,
            ["Transactor__Embedded__SiloPort"] = silo.ToString(CultureInfo.InvariantCulture),
            ["Transactor__Embedded__GatewayPort"] = gateway.ToString(CultureInfo.InvariantCulture),
        });
        await api.WaitUntilHealthy($"{url}/health", TimeSpan.FromSeconds(90));
        // The embedded ledger prints its generated admin key on exactly one line.
        string[] KeyLines() => api.Output.Split('\n').Where(line => line.StartsWith("Admin API key: ", StringComparison.Ordinal)).ToArray();
        for (var waited = Stopwatch.StartNew(); KeyLines().Length == 0 && waited.Elapsed < TimeSpan.FromSeconds(10);)
        {
            await Task.Delay(50);
        }

        var adminKey = Assert.Single(KeyLines())["Admin API key: ".Length..].Trim();

        var (exitCode, output) = await RunBash(script.Replace("TRANSACTOR=http://localhost:5090", $"TRANSACTOR={url}", StringComparison.Ordinal), adminKey);

        Assert.True(exitCode == 0, $"the walkthrough exited {exitCode}:\n{output}");
        Assert.Contains("Idempotent-Replayed: true", output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("idempotency_key_reused", output, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"not_owner\"", output, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"api_key_missing\"", output, StringComparison.Ordinal);
        using var client = new HttpClient { BaseAddress = new Uri(url) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", adminKey);
        var alice = await client.GetFromJsonAsync<JsonElement>("/accounts/alice");
        var bob = await client.GetFromJsonAsync<JsonElement>("/accounts/bob");
        Assert.Contains("pending_transfer_already_posted", output, StringComparison.Ordinal);
        Assert.Contains("\"posted_amount\":400", output, StringComparison.Ordinal);
        Assert.Equal(7_100, alice.GetProperty("available").GetInt64());
        Assert.Equal(2_900, bob.GetProperty("available").GetInt64());
        Assert.Contains("\"kind\":\"transfer_out\",\"transfer_id\":\"transfer-1\"", output, StringComparison.Ordinal);
        Assert.Contains("\"kind\":\"post_out\"", output, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"insufficient_funds\"", output, StringComparison.Ordinal);
        var carol = await client.GetFromJsonAsync<JsonElement>("/accounts/carol");
        Assert.Equal((-6_000L, 10_000L), (carol.GetProperty("available").GetInt64(), carol.GetProperty("credit_limit").GetInt64()));
        Assert.Contains("\"kind\":\"linked\"", output, StringComparison.Ordinal);
        Assert.Contains("\"failed_leg\":1", output, StringComparison.Ordinal);
        Assert.Contains("\"orderId\":\"77\"", output, StringComparison.Ordinal);
        Assert.Contains("\"customer\":\"c-42\"", output, StringComparison.Ordinal);
        Assert.Equal(2_950, (await client.GetFromJsonAsync<JsonElement>("/accounts/erin")).GetProperty("available").GetInt64());
        // erin's history filtered by the order's metadata lists the linked transfer's entry, not the deposit's.
        Assert.Contains("\"kind\":\"transfer_out\",\"transfer_id\":\"order-77\"", output, StringComparison.Ordinal);
        Assert.DoesNotContain("\"transfer_id\":\"deposit-erin-1\"", output, StringComparison.Ordinal);
        Assert.Equal(50, (await client.GetFromJsonAsync<JsonElement>("/accounts/fees")).GetProperty("available").GetInt64());
        Assert.Contains("Embedded single-process ledger with IN-MEMORY storage", api.Output, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Output)> RunBash(string script, string adminKey)
    {
        var start = new ProcessStartInfo("bash", ["-eo", "pipefail", "-c", script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ADMIN_KEY"] = adminKey;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    [GeneratedRegex(@"<!-- walkthrough[^>]*-->\s*```sh\n(?<script>.*?)```", RegexOptions.Singleline)]
    private static partial Regex WalkthroughBlock();
}
