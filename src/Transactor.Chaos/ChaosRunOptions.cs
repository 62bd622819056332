namespace Transactor.Chaos;

/// <summary>What one run of the fault suite does; every choice it makes at random follows <see cref="Seed"/>.</summary>
public sealed record ChaosRunOptions
{
    /// <summary>How long load runs while faults are injected.</summary>
    public required TimeSpan FaultPhase { get; init; }

    public required int Seed { get; init; }

    /// <summary>Where PostgreSQL's data, the processes' logs, the history and (by default) the report go.</summary>
    public required DirectoryInfo WorkDirectory { get; init; }

    /// <summary>The report's path; <c>report.json</c> in <see cref="WorkDirectory"/> unless given.</summary>
    public FileInfo? ReportFile { get; init; }

    /// <summary>Keep PostgreSQL's data directory after a run without violations (it is always kept after one with).</summary>
    public bool KeepData { get; init; }

    /// <summary>The built programs' configuration (Release or Debug).</summary>
    public required string Configuration { get; init; }

    public required string RepositoryRoot { get; init; }

    public int Silos { get; init; } = 3;

    /// <summary>The seeded schedule of faults, or one fault alone to measure availability.</summary>
    public ChaosScenario Scenario { get; init; } = ChaosScenario.Schedule;

    /// <summary>How long a silo killed by <see cref="ChaosScenario.KillSilo"/> stays down.</summary>
    public TimeSpan ScenarioDowntime { get; init; } = TimeSpan.FromSeconds(40);

    /// <summary>
    /// Run the silos with the short transfer timings below (<see cref="Lease"/>, <see cref="RecoveryPeriod"/>);
    /// otherwise with the defaults a deployment has.
    /// </summary>
    public bool ShortTimings { get; init; } = true;

    public int Accounts { get; init; } = 12;

    public long InitialBalanceMinor { get; init; } = 100_000;

    /// <summary>Concurrent clients, each sending one request at a time.</summary>
    public int Clients { get; init; } = 8;

    public ChaosPorts Ports { get; init; } = new();

    /// <summary>The transfer lease the silos run with; pauses and message delays are chosen to outlast it.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a recovery shard sweeps, and how long a movement waits before it is swept.</summary>
    public TimeSpan RecoveryPeriod { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Share of grain calls the silos' fault filter delays, while faults are on.</summary>
    public double MessageDelayProbability { get; init; } = 0.005;

    /// <summary>Share of grain calls the silos' fault filter drops, while faults are on.</summary>
    public double MessageDropProbability { get; init; } = 0.002;

    /// <summary>The longest message delay: longer than the lease.</summary>
    public TimeSpan MaxMessageDelay { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>How long a client waits for an answer before it counts the attempt as unknown.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Attempts per idempotency key (a retry after an unknown outcome or a 429 reuses the key).</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>How often every balance is read while load runs.</summary>
    public TimeSpan ReadInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest wait for a process to become healthy.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>The longest wait, after healing and after the full restart, for every movement to end.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromMinutes(2);
}

/// <summary>Loopback ports of one run; silo <c>i</c> uses each silo port plus <c>i</c>. Defaults differ from scripts/run-cluster.sh's.</summary>
public sealed record ChaosPorts
{
    public int Postgres { get; init; } = 25432;

    public int Api { get; init; } = 5580;

    public int SiloHttp { get; init; } = 5581;

    public int Silo { get; init; } = 21111;

    public int Gateway { get; init; } = 31000;
}

/// <summary>What the nemesis does during the fault phase.</summary>
public enum ChaosScenario
{
    /// <summary>The seeded schedule of every kind of process fault, with message faults.</summary>
    Schedule,

    /// <summary>SIGKILL of the last silo after some calm load; it stays down for <see cref="ChaosRunOptions.ScenarioDowntime"/>, then restarts.</summary>
    KillSilo,

    /// <summary>SIGKILL of every silo and the API after some calm load, all restarted at once, with nothing marked dead for them.</summary>
    RestartCluster,
}
