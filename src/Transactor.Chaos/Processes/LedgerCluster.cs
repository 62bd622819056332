using System.Globalization;

namespace Transactor.Chaos.Processes;

/// <summary>
/// PostgreSQL, the silos and the API as separate processes on loopback, configured with the
/// environment variables scripts/run-cluster.sh sets, plus short transfer timings and the silos'
/// message fault filter (armed only while <see cref="ArmedFile"/> exists). A supervisor restarts a
/// node that exits on its own (a silo that finds itself declared dead after a pause ends itself).
/// </summary>
internal sealed class LedgerCluster : IAsyncDisposable
{
    private const string ClusterId = "transactor-chaos";

    /// <summary><c>Orleans.Runtime.SiloStatus.Dead</c> as the membership table stores it.</summary>
    private const int DeadSiloStatus = 6;

    private static readonly TimeSpan SupervisorInterval = TimeSpan.FromSeconds(1);

    private readonly ChaosRunOptions _options;
    private readonly History _history;
    private readonly CancellationTokenSource _stopping = new();
    private Task? _supervisor;

    public LedgerCluster(ChaosRunOptions options, History history)
    {
        _options = options;
        _history = history;
        var logs = Directory.CreateDirectory(Path.Combine(options.WorkDirectory.FullName, "logs")).FullName;
        LogDirectory = logs;
        ArmedFile = Path.Combine(options.WorkDirectory.FullName, "faults-armed");
        Postgres = new PostgresProcess(Path.Combine(options.WorkDirectory.FullName, "pgdata"), options.Ports.Postgres, Path.Combine(logs, "postgres.log"));

        var ports = options.Ports;
        var common = new Dictionary<string, string>
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["ConnectionStrings__transactordb"] = Postgres.ConnectionString,
            ["Orleans__ClusterId"] = ClusterId,
            ["Orleans__ServiceId"] = "transactor-chaos",
            ["Orleans__Clustering__ProviderType"] = "AdoNet",
            ["Orleans__Clustering__Invariant"] = "Npgsql",
            ["Orleans__Clustering__ConnectionName"] = "transactordb",
        };
        for (var i = 0; i < options.Silos; i++)
        {
            var silo = new Dictionary<string, string>(common)
            {
                ["Orleans__GrainStorage__ledger__ProviderType"] = "AdoNet",
                ["Orleans__GrainStorage__ledger__Invariant"] = "Npgsql",
                ["Orleans__GrainStorage__ledger__ConnectionName"] = "transactordb",
                ["Orleans__Reminders__ProviderType"] = "AdoNet",
                ["Orleans__Reminders__Invariant"] = "Npgsql",
                ["Orleans__Reminders__ConnectionName"] = "transactordb",
                ["Orleans__Endpoints__AdvertisedIPAddress"] = "127.0.0.1",
                ["Orleans__Endpoints__SiloPort"] = Str(ports.Silo + i),
                ["Orleans__Endpoints__GatewayPort"] = Str(ports.Gateway + i),
                ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{Str(ports.SiloHttp + i)}",
                ["Transactor__Chaos__DelayProbability"] = options.MessageDelayProbability.ToString(CultureInfo.InvariantCulture),
                ["Transactor__Chaos__DropProbability"] = options.MessageDropProbability.ToString(CultureInfo.InvariantCulture),
                ["Transactor__Chaos__MaxDelay"] = options.MaxMessageDelay.ToString("c", CultureInfo.InvariantCulture),
                ["Transactor__Chaos__ArmedFile"] = ArmedFile,
                ["Transactor__Chaos__Seed"] = Str(options.Seed * 100 + i),
            };
            if (options.ShortTimings)
            {
                // Short timings, so that leases run out and recovery finishes movements within the run.
                silo["Transactor__Transfers__LeaseDuration"] = options.Lease.ToString("c", CultureInfo.InvariantCulture);
                silo["Transactor__Transfers__RecoveryDueTime"] = options.RecoveryPeriod.ToString("c", CultureInfo.InvariantCulture);
                silo["Transactor__Transfers__RecoveryPeriod"] = options.RecoveryPeriod.ToString("c", CultureInfo.InvariantCulture);
                silo["Transactor__Transfers__WaitTimeout"] = "00:00:05";
            }

            Silos.Add(new LedgerNode($"silo{i}", Assembly("Transactor.Silo"), silo, new Uri($"http://127.0.0.1:{Str(ports.SiloHttp + i)}/health"), Path.Combine(logs, $"silo{i}.log")));
        }

        // As scripts/run-cluster.sh: the API is a client (clustering only) with its admission limits.
        var api = new Dictionary<string, string>(common)
        {
            ["Transactor__Api__MaxConcurrentRequests"] = "64",
            ["Transactor__Api__MaxQueuedRequests"] = "64",
            ["ASPNETCORE_URLS"] = ApiUrl.ToString().TrimEnd('/'),
            ["Transactor__Auth__AdminKey"] = AdminKey,
        };
        Api = new LedgerNode("api", Assembly("Transactor.Api"), api, new Uri(ApiUrl, "/health"), Path.Combine(logs, "api.log"));
    }

    public PostgresProcess Postgres { get; }

    public List<LedgerNode> Silos { get; } = [];

    public LedgerNode Api { get; }

    public IEnumerable<LedgerNode> Nodes => [.. Silos, Api];

    /// <summary>The API's bootstrap admin key, new for every run; the workload sends it.</summary>
    public string AdminKey { get; } = "chaos-admin-" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N");

    public Uri ApiUrl => new($"http://127.0.0.1:{Str(_options.Ports.Api)}/");

    public string LogDirectory { get; }

    /// <summary>While this file exists, the silos' fault filter delays and drops grain calls.</summary>
    public string ArmedFile { get; }

    public bool MessageFaultsArmed
    {
        get => File.Exists(ArmedFile);
        set
        {
            if (value)
            {
                File.WriteAllText(ArmedFile, "armed\n");
            }
            else
            {
                File.Delete(ArmedFile);
            }
        }
    }

    /// <summary>PostgreSQL, then the first silo (it creates the schema), the other silos, the API; then the supervisor.</summary>
    public async Task StartAsync(CancellationToken cancellation)
    {
        await Postgres.InitializeAsync(cancellation);
        _history.Event("start", "postgres", Postgres.ConnectionString);
        await StartNodesAsync(cancellation);
        _supervisor = Task.Run(() => Supervise(_stopping.Token), CancellationToken.None);
    }

    /// <summary>
    /// Kills every silo and the API at once (SIGKILL), as a power loss of the whole cluster, and
    /// starts them all again at once. With <paramref name="declareDead"/>, the killed silos are first
    /// marked dead in the membership table, as Orleans would once their heartbeats are old enough.
    /// </summary>
    public async Task RestartAllAsync(bool declareDead, CancellationToken cancellation)
    {
        foreach (var node in Nodes)
        {
            await node.Gate.WaitAsync(cancellation);
        }

        try
        {
            await Task.WhenAll(Nodes.Select(n => n.KillAsync()));
            _history.Event("kill", "cluster", "SIGKILL of every silo and the API");
            if (declareDead)
            {
                // Only membership rows change, no ledger state.
                await Postgres.ExecuteAsync(
                    $"UPDATE orleans_membership SET status = {DeadSiloStatus} WHERE deployment_id = '{ClusterId}' AND status <> {DeadSiloStatus}; "
                    + $"UPDATE orleans_membership_version SET version = version + 1 WHERE deployment_id = '{ClusterId}';",
                    cancellation);
            }

            var started = await Task.WhenAll(Nodes.Select(n => StartNodeAsync(n, cancellation)));
            if (started.Contains(false))
            {
                throw new InvalidOperationException($"The cluster did not start again; see {LogDirectory}.");
            }
        }
        finally
        {
            foreach (var node in Nodes)
            {
                node.Gate.Release();
            }
        }
    }

    /// <summary>Starts <paramref name="node"/> and waits until it is healthy; logs an event either way.</summary>
    public async Task<bool> StartNodeAsync(LedgerNode node, CancellationToken cancellation)
    {
        node.Start();
        var healthy = await node.WaitHealthyAsync(_options.StartTimeout, cancellation);
        _history.Event(healthy ? "up" : "not-up", node.Name, healthy ? $"healthy (pid {node.Process?.Id})" : $"not healthy within {_options.StartTimeout.TotalSeconds:F0} s; see {LogDirectory}");
        return healthy;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_supervisor is not null)
        {
            await _supervisor.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }

        await Postgres.DisposeAsync();
        if (File.Exists(ArmedFile))
        {
            File.Delete(ArmedFile);
        }

        _stopping.Dispose();
    }

    private async Task StartNodesAsync(CancellationToken cancellation)
    {
        if (!await StartNodeAsync(Silos[0], cancellation))
        {
            throw new InvalidOperationException($"{Silos[0].Name} did not start; see {LogDirectory}.");
        }

        var others = await Task.WhenAll(Silos.Skip(1).Select(s => StartNodeAsync(s, cancellation)));
        if (others.Contains(false) || !await StartNodeAsync(Api, cancellation))
        {
            throw new InvalidOperationException($"The cluster did not start; see {LogDirectory}.");
        }
    }

    private async Task Supervise(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            await Task.Delay(SupervisorInterval, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            foreach (var node in Nodes)
            {
                // The nemesis holds the gate while it kills and restarts a node on purpose.
                if (!node.Exited || stopping.IsCancellationRequested || !node.Gate.Wait(0, CancellationToken.None))
                {
                    continue;
                }

                try
                {
                    if (node.Exited)
                    {
                        _history.Event("exited", node.Name, $"exited on its own with code {node.Process?.ExitCode}; restarting");
                        await node.KillAsync();
                        await StartNodeAsync(node, stopping);
                    }
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                finally
                {
                    node.Gate.Release();
                }
            }
        }
    }

    private string Assembly(string project)
    {
        var path = Path.Combine(_options.RepositoryRoot, "src", project, "bin", _options.Configuration, "net10.0", project + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {project} first (dotnet build -c {_options.Configuration}).", path);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
