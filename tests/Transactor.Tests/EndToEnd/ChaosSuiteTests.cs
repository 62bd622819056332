using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Transactor.Tests.Api;
using Xunit.Abstractions;

namespace Transactor.Tests.EndToEnd;

/// <summary>
/// The fault suite (scripts/chaos.sh, docs/reliability.md) in a short seeded run: its own
/// PostgreSQL, three silo processes and the API, under kills, a pause past the lease, a database
/// crash and delayed and dropped grain messages; then a full restart and the checker. Runs alone,
/// after the other tests, so that neither slows the other down on a small machine.
/// </summary>
[Collection(ChaosTestGroup.Name)]
public sealed class ChaosSuiteTests(ITestOutputHelper output)
{
    /// <summary>A seed whose schedule puts every kind of fault early in the run (FaultScheduleTests checks it).</summary>
    internal const int Seed = 3;

    internal const double FaultMinutes = 0.75;

    /// <summary>A run takes under 2 minutes on 2 cores; the rest is headroom for a slow machine.</summary>
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(10);

    [Fact]
    public async Task A_seeded_run_of_process_faults_and_message_faults_breaks_no_promise_of_the_ledger()
    {
        await Run(["--minutes", FaultMinutes.ToString(CultureInfo.InvariantCulture), "--seed", Str(Seed)], root =>
        {
            var faults = root.GetProperty("faults").GetArrayLength();
            var messages = root.GetProperty("message_faults");
            var movements = root.GetProperty("movements");
            Assert.True(faults >= 3, $"Only {faults} process faults were injected.");
            Assert.True(messages.GetProperty("delayed").GetInt32() + messages.GetProperty("dropped").GetInt32() > 0, $"No grain message was delayed or dropped: {messages}");
            Assert.True(movements.GetProperty("acknowledged").GetInt32() >= 50, $"Too few movements were acknowledged for the run to mean much: {movements}");
        });
    }

    /// <summary>
    /// Issue #23: <c>kill -9</c> of one silo process of three under load (the runner's kill-silo
    /// scenario: 16 clients, the silo kept down 8 s, default transfer timings, no message faults).
    /// Commits stop for at most 10 s, and the books check passes.
    /// </summary>
    [Fact]
    public async Task Killing_one_silo_process_of_three_under_load_stops_commits_for_at_most_10_s()
    {
        await Run(["--scenario", "kill-silo", "--down-seconds", "8", "--clients", "16", "--accounts", "60", "--seed", "1"], root =>
        {
            var kill = Assert.Single(root.GetProperty("availability").EnumerateArray(), a => a.GetProperty("kind").GetString() == "kill_silo");
            var gapMs = kill.GetProperty("longest_gap_ms").GetInt64();
            Assert.True(gapMs <= 10_000, $"No transfer committed for {gapMs} ms after the silo was killed (limit 10 s): {kill}");
            Assert.True(kill.GetProperty("first_commit_after_ms").ValueKind == JsonValueKind.Number, $"Nothing committed after the kill: {kill}");
            Assert.True(root.GetProperty("movements").GetProperty("acknowledged").GetInt32() >= 200, $"Too few movements acknowledged: {root.GetProperty("movements")}");
        });
    }

    /// <summary>
    /// Issue #23: <c>kill -9</c> of every silo process and the API at once under load, all started
    /// again at once (the runner's restart-cluster scenario: 16 clients, default transfer timings, no
    /// message faults). Commits come back within 20 s of the kill (the issue's goal; 5-16 s in the
    /// runs of docs/reliability.md, "Full restart"), and the books check passes, movements in flight
    /// at the kill included. Once this took 39.5 s in CI: the API's client waited out a 30-s response
    /// timeout for its first cluster manifest, asked of a gateway whose silo was starting that
    /// second; the API's client now gives up on such a request after 5 s
    /// (<c>Transactor:FailureDetection:ClientResponseTimeout</c>).
    /// </summary>
    [Fact]
    public async Task Restarting_every_process_at_once_under_load_serves_again_within_20_s()
    {
        await Run(["--scenario", "restart-cluster", "--clients", "16", "--accounts", "60", "--seed", "1"], root =>
        {
            var restart = Assert.Single(root.GetProperty("availability").EnumerateArray(), a => a.GetProperty("kind").GetString() == "restart_cluster");
            var gapMs = restart.GetProperty("longest_gap_ms").GetInt64();
            Assert.True(gapMs <= 20_000, $"No transfer committed for {gapMs} ms after every process was killed and restarted (limit 20 s): {restart}");
            Assert.True(restart.GetProperty("first_commit_after_ms").ValueKind == JsonValueKind.Number, $"Nothing committed after the restart: {restart}");
            Assert.True(root.GetProperty("movements").GetProperty("acknowledged").GetInt32() >= 200, $"Too few movements acknowledged: {root.GetProperty("movements")}");
        });
    }

    /// <summary>
    /// Runs the fault suite's runner with <paramref name="arguments"/> on free ports, requires a
    /// report with no violation and exit code 0, then <paramref name="check"/>s the report.
    /// </summary>
    private async Task Run(string[] arguments, Action<JsonElement> check)
    {
        var work = Path.Combine(Path.GetTempPath(), $"transactor-chaos-test-{Guid.NewGuid():N}");
        var taken = new HashSet<int>();
        arguments =
        [
            .. arguments, "--work-dir", work,
            "--postgres-port", Str(FreePorts(1, taken)), "--api-port", Str(FreePorts(1, taken)),
            "--silo-http-port", Str(FreePorts(3, taken)), "--silo-port", Str(FreePorts(3, taken)), "--gateway-port", Str(FreePorts(3, taken)),
        ];
        var passed = false;
        // Killing the runner's process tree also ends the silos, the API and PostgreSQL it started.
        var runner = ProcessHost.Start("Transactor.Chaos", new Dictionary<string, string>(), arguments);
        try
        {
            var exit = await runner.WaitForExitAsync(RunTimeout);
            Assert.True(exit is not null, $"The chaos run did not end within {RunTimeout}; work directory {work}.\n{runner.Output}");
            var reportFile = Path.Combine(work, "report.json");
            Assert.True(File.Exists(reportFile), $"The chaos run exited {exit} without a report.\n{runner.Output}");
            using var report = JsonDocument.Parse(await File.ReadAllTextAsync(reportFile));
            var root = report.RootElement;
            output.WriteLine(root.GetProperty("verdict").GetString());
            foreach (var kind in root.GetProperty("availability_by_kind").EnumerateArray())
            {
                output.WriteLine(kind.ToString());
            }

            Assert.True(root.GetProperty("error").ValueKind == JsonValueKind.Null, $"The chaos run failed: {root.GetProperty("error")}\n{runner.Output}");
            var violations = root.GetProperty("violations");
            Assert.True(violations.GetArrayLength() == 0, $"{string.Join(' ', arguments)}: the checker found violations (history and logs in {work}):\n{violations}");
            Assert.Equal(0, exit);
            check(root);
            passed = true;
        }
        finally
        {
            await runner.DisposeAsync();
            // A failed run's directory holds the history, the logs and PostgreSQL's data to look into.
            if (passed && Directory.Exists(work))
            {
                Directory.Delete(work, recursive: true);
            }
        }
    }

    /// <summary>
    /// The first of <paramref name="count"/> consecutive free loopback ports none of which is in
    /// <paramref name="taken"/> (silo i uses the first plus i), below Linux's ephemeral range
    /// (32768-60999): a process the suite kills is restarted on its ports, and a port in that range
    /// may meanwhile be the local end of some outgoing connection.
    /// </summary>
    private static int FreePorts(int count, HashSet<int> taken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var ports = Enumerable.Range(Random.Shared.Next(20_000, 32_000), count).ToArray();
            if ((!ports.Any(taken.Contains) && ports.All(Bindable)) || attempt == 100)
            {
                taken.UnionWith(ports);
                return ports[0];
            }
        }
    }

    private static bool Bindable(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>The fault suite's collection: it runs after every parallel collection, alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ChaosTestGroup
{
    public const string Name = "chaos";
}
