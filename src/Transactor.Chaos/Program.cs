using System.CommandLine;
using System.Globalization;
using Transactor.Chaos;

var minutes = new Option<double>("--minutes") { Description = "Minutes of load with faults (startup, settling and the checks come on top).", DefaultValueFactory = _ => 3 };
var seed = new Option<int>("--seed") { Description = "Seed of the fault schedule, the clients' choices and the silos' message faults.", DefaultValueFactory = _ => 1 };
var workDir = new Option<DirectoryInfo?>("--work-dir") { Description = "Where PostgreSQL's data, the logs, the history and the report go (default: a new directory under /tmp)." };
var output = new Option<FileInfo?>("--out") { Description = "Write the JSON report here (default: report.json in the work directory)." };
var keepData = new Option<bool>("--keep-data") { Description = "Keep PostgreSQL's data directory after a passing run (it is always kept after a failing one)." };
var clients = new Option<int>("--clients") { Description = "Concurrent clients.", DefaultValueFactory = _ => 8 };
var accounts = new Option<int>("--accounts") { Description = "Accounts to open and move money between.", DefaultValueFactory = _ => 12 };
var delay = new Option<double>("--delay-probability") { Description = "Share of grain calls (0-1) the silos delay while faults are on.", DefaultValueFactory = _ => 0.005 };
var drop = new Option<double>("--drop-probability") { Description = "Share of grain calls (0-1) the silos drop while faults are on.", DefaultValueFactory = _ => 0.002 };
var maxDelay = new Option<double>("--max-delay") { Description = "The longest message delay in seconds (the lease is 5 s).", DefaultValueFactory = _ => 8 };
var postgresPort = new Option<int>("--postgres-port") { Description = "PostgreSQL's port.", DefaultValueFactory = _ => 25432 };
var apiPort = new Option<int>("--api-port") { Description = "The API's HTTP port.", DefaultValueFactory = _ => 5580 };
var siloHttpPort = new Option<int>("--silo-http-port") { Description = "Silo i's HTTP (health, dashboard) port is this plus i.", DefaultValueFactory = _ => 5581 };
var siloPort = new Option<int>("--silo-port") { Description = "Silo i's silo-to-silo port is this plus i.", DefaultValueFactory = _ => 21111 };
var scenario = new Option<ChaosScenario>("--scenario")
{
    Description = "schedule: the seeded faults with message faults; kill-silo: one silo killed and kept down (--down-seconds); restart-cluster: every process killed and restarted at once. "
        + "The two scenarios run with the silos' default transfer timings and no message faults.",
    DefaultValueFactory = _ => ChaosScenario.Schedule,
    CustomParser = r => Enum.Parse<ChaosScenario>(r.Tokens[0].Value.Replace("-", "", StringComparison.Ordinal), ignoreCase: true),
};
var downSeconds = new Option<double>("--down-seconds") { Description = "How long kill-silo keeps the silo down.", DefaultValueFactory = _ => 40 };
var gatewayPort = new Option<int>("--gateway-port") { Description = "Silo i's gateway port is this plus i.", DefaultValueFactory = _ => 31000 };

var root = new RootCommand(
    "Transactor fault suite: starts PostgreSQL, 3 silo processes and the API, drives recorded load over HTTP while killing, pausing and "
    + "crashing them and delaying and dropping grain messages, then restarts the whole cluster and checks the history. "
    + "Exits 0 when no promise was broken, 1 on a violation, 2 when the run itself failed (docs/reliability.md).")
{
    minutes, seed, workDir, output, keepData, clients, accounts, delay, drop, maxDelay, postgresPort, apiPort, siloHttpPort, siloPort, gatewayPort, scenario, downSeconds,
};
root.SetAction(async (parse, cancellation) =>
{
    var runSeed = parse.GetValue(seed);
    var runScenario = parse.GetValue(scenario);
    var alone = runScenario != ChaosScenario.Schedule;
    var options = new ChaosRunOptions
    {
        // A scenario's load runs 10 s before its fault, and long enough after it to see service come back.
        FaultPhase = runScenario switch
        {
            ChaosScenario.KillSilo => TimeSpan.FromSeconds(10 + Math.Max(0, parse.GetValue(downSeconds)) + 30),
            // 75 s after the restart: long enough to see calls that wait out a 30-s response timeout end.
            ChaosScenario.RestartCluster => TimeSpan.FromSeconds(10 + 75),
            _ => TimeSpan.FromMinutes(Math.Max(0.1, parse.GetValue(minutes))),
        },
        Seed = runSeed,
        WorkDirectory = parse.GetValue(workDir)
            ?? new DirectoryInfo(Path.Combine(Path.GetTempPath(), string.Create(CultureInfo.InvariantCulture, $"transactor-chaos-{runSeed}-{DateTime.UtcNow:yyyyMMdd-HHmmss}"))),
        ReportFile = parse.GetValue(output),
        KeepData = parse.GetValue(keepData),
        Configuration = Built.Configuration,
        RepositoryRoot = Built.RepositoryRoot(),
        Clients = Math.Max(1, parse.GetValue(clients)),
        Accounts = Math.Max(2, parse.GetValue(accounts)),
        MessageDelayProbability = alone ? 0 : Math.Clamp(parse.GetValue(delay), 0, 1),
        MessageDropProbability = alone ? 0 : Math.Clamp(parse.GetValue(drop), 0, 1),
        Scenario = runScenario,
        ScenarioDowntime = TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(downSeconds))),
        ShortTimings = !alone,
        MaxMessageDelay = TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(maxDelay))),
        Ports = new ChaosPorts
        {
            Postgres = parse.GetValue(postgresPort),
            Api = parse.GetValue(apiPort),
            SiloHttp = parse.GetValue(siloHttpPort),
            Silo = parse.GetValue(siloPort),
            Gateway = parse.GetValue(gatewayPort),
        },
    };
    Console.Error.WriteLine($"chaos: seed {options.Seed}, {options.FaultPhase.TotalMinutes:0.##} min of faults; work directory {options.WorkDirectory.FullName}");
    var report = await new ChaosRunner(options).RunAsync(cancellation);
    foreach (var violation in report.Violations)
    {
        Console.Error.WriteLine($"VIOLATION {violation.Kind}: {violation.Detail}");
    }

    foreach (var line in report.AvailabilityLines())
    {
        Console.WriteLine(line);
    }

    Console.WriteLine(report.Verdict);
    return report.Error is not null ? 2 : report.Passed ? 0 : 1;
});
return await root.Parse(args).InvokeAsync();

/// <summary>Where the programs the runner starts were built.</summary>
internal static class Built
{
    /// <summary>The runner's own configuration; the silo and the API are built alike.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string RepositoryRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Transactor.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException("Transactor.sln not found above " + AppContext.BaseDirectory);
    }
}
