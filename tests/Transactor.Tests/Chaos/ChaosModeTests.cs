using System.Text.Json;
using Transactor.LoadGen;
using Transactor.Tests.Api;

namespace Transactor.Tests.Chaos;

/// <summary>Chaos mode (<c>Transactor:Chaos</c>) on the embedded ledger, every fault kind at once, under the load generator.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class ChaosModeTests(ApiFixture api)
{
    [Fact]
    public async Task A_seeded_run_with_every_fault_kind_on_balances_the_books_and_leaves_nothing_in_flight()
    {
        await using var chaotic = api.WithSettings(
            ("Transactor:Chaos:DelayProbability", "0.02"),
            ("Transactor:Chaos:MaxDelay", "00:00:00.200"),
            ("Transactor:Chaos:DropProbability", "0.01"),
            ("Transactor:Chaos:StorageWriteFailureProbability", "0.02"),
            ("Transactor:Chaos:StorageReadFailureProbability", "0.2"),
            ("Transactor:Chaos:Seed", "21"),
            // Short timings, so that leases run out and recovery finishes abandoned movements within the run.
            ("Transactor:Transfers:LeaseDuration", "00:00:02"),
            ("Transactor:Transfers:RecoveryDueTime", "00:00:02"),
            ("Transactor:Transfers:RecoveryPeriod", "00:00:02"),
            ("Transactor:Transfers:WaitTimeout", "00:00:02"));
        var options = new LoadOptions
        {
            Clients = 8,
            Transfers = 400,
            Accounts = 30,
            InitialBalanceMinor = 50_000,
            MaxAmountMinor = 5_000,
            PoliteShare = 0.75,
            MaxAttempts = 30,
            BackoffBase = TimeSpan.FromMilliseconds(10),
            BackoffCap = TimeSpan.FromMilliseconds(200),
            RequestTimeout = TimeSpan.FromSeconds(5),
            // No adaptive throttle: injected storage faults answer 503 (retry with the same key), and
            // the throttle would have the clients refuse their own requests and give up, at a rate
            // set by the run's pace on this machine rather than by whether the ledger recovers.
            ThrottleK = 0,
            Seed = 21,
        };
        var http = chaotic.CreateClient();

        var summary = await new LoadRunner(http, options, chaotic.Server.CreateHandler()).RunAsync();

        // The books check waits for every movement to end (nothing reserved or incoming anywhere),
        // then checks conservation, no negative balance, and that every answered commit reads committed.
        Assert.True(summary.BooksBalanced, string.Join("; ", summary.CheckFailures));
        Assert.Equal(400, summary.Transfers);
        Assert.True(summary.Committed > 200, $"only {summary.Committed} of 400 committed: {JsonSerializer.Serialize(summary)}");
        using var metrics = JsonDocument.Parse(await http.GetStringAsync("/metrics"));
        var chaos = metrics.RootElement.GetProperty("chaos");
        Assert.True(chaos.GetProperty("active").GetBoolean());
        var injected = chaos.GetProperty("injected");
        foreach (var kind in new[] { "delay", "drop", "storage_write", "storage_read" })
        {
            Assert.True(injected.TryGetProperty(kind, out var count) && count.GetInt64() > 0, $"no {kind} fault was injected: {injected}");
        }
    }

    [Fact]
    public async Task Chaos_mode_is_off_by_default_and_absent_from_metrics()
    {
        using var metrics = JsonDocument.Parse(await api.CreateClient().GetStringAsync("/metrics"));

        Assert.Equal(JsonValueKind.Null, metrics.RootElement.GetProperty("chaos").ValueKind);
    }
}
