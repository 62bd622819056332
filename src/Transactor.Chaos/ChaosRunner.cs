using System.Text.Json;
using Transactor.Chaos.Processes;

namespace Transactor.Chaos;

/// <summary>
/// One run of the fault suite: start the cluster, set up accounts, run load while the nemesis injects
/// faults, heal, let recovery settle, restart the whole cluster, settle again, read everything, and
/// check the history.
/// </summary>
internal sealed class ChaosRunner(ChaosRunOptions options)
{
    /// <summary>How many GET /transfers/{id} run at once while resolving keys.</summary>
    private const int MaxConcurrentResolves = 16;

    private static readonly TimeSpan SettlePollInterval = TimeSpan.FromSeconds(2);

    /// <summary>Load before a scenario's one fault, so that the ledger is warm when it strikes.</summary>
    private static readonly TimeSpan ScenarioCalm = TimeSpan.FromSeconds(10);

    private long _loadEndedAtMs;

    private readonly History _history = new();
    private readonly Dictionary<string, Resolution> _resolutions = new(StringComparer.Ordinal);

    public async Task<ChaosReport> RunAsync(CancellationToken cancellation)
    {
        var startedAt = DateTimeOffset.UtcNow;
        var plan = options.Scenario switch
        {
            ChaosScenario.KillSilo => FaultSchedule.Alone(FaultKind.KillSilo, options.Silos, ScenarioCalm, options.ScenarioDowntime),
            ChaosScenario.RestartCluster => FaultSchedule.Alone(FaultKind.RestartCluster, options.Silos, ScenarioCalm, TimeSpan.Zero),
            _ => FaultSchedule.Plan(options.Seed, options.FaultPhase, options.Silos, options.Lease),
        };
        Directory.CreateDirectory(options.WorkDirectory.FullName);
        var cluster = new LedgerCluster(options, _history);
        var nemesis = new Nemesis(options, cluster, _history);
        Verdict? verdict = null;
        string? error = null;
        try
        {
            using var workload = new Workload(options, _history, cluster.ApiUrl, cluster.AdminKey);
            await cluster.StartAsync(cancellation);
            await workload.SetupAsync(cancellation);
            _history.Event("phase", "load", $"{options.Clients} clients over {options.Accounts} accounts for {options.FaultPhase.TotalMinutes:0.##} min, with {plan.Count} faults planned");

            using (var stop = new CancellationTokenSource())
            {
                var clients = workload.RunClientsAsync(stop.Token);
                var reader = workload.RunReaderAsync(stop.Token);
                try
                {
                    await nemesis.RunAsync(plan, options.FaultPhase, cancellation);
                }
                finally
                {
                    _loadEndedAtMs = _history.NowMs;
                    await stop.CancelAsync();
                    await Task.WhenAll(clients, reader);
                }
            }

            _history.Event("phase", "settle", "faults healed, load stopped; waiting for every movement to end");
            await SettleAsync(workload, "settle", cancellation);
            await cluster.RestartAllAsync(declareDead: true, cancellation);
            _history.Event("phase", "final", "whole cluster restarted; waiting for every movement to end");
            var final = await SettleAsync(workload, "final", cancellation);
            await ResolveAllAsync(workload, _history.Movements, cancellation);
            verdict = new Checker(_history, workload.AccountIds, final, _resolutions).Check();
        }
        catch (Exception ex) when (!cancellation.IsCancellationRequested)
        {
            error = $"{ex.GetType().Name}: {ex.Message}";
            _history.Event("error", "runner", ex.ToString());
        }
        finally
        {
            await cluster.DisposeAsync();
        }

        var report = Report(startedAt, plan, nemesis.Injected, verdict, error, cluster.LogDirectory);
        await WriteAsync(report);
        if (report.Passed && !options.KeepData)
        {
            Directory.Delete(Path.Combine(options.WorkDirectory.FullName, "pgdata"), recursive: true);
        }

        return report;
    }

    /// <summary>
    /// Reads every account until none has anything reserved or incoming and no key whose outcome the
    /// client does not know is still pending, or until <see cref="ChaosRunOptions.SettleTimeout"/>;
    /// returns the last read (the checker judges it either way).
    /// </summary>
    private async Task<BalanceRead> SettleAsync(Workload workload, string phase, CancellationToken cancellation)
    {
        var deadline = DateTime.UtcNow + options.SettleTimeout;
        var open = _history.Movements.Where(m => m.LastOutcome == Outcome.Unknown).ToList();
        while (true)
        {
            var read = await workload.ReadAllAsync(phase, cancellation);
            await ResolveAllAsync(workload, open, cancellation);
            open.RemoveAll(m => _resolutions[m.Key].Status is not (Resolved.Pending or Resolved.Unreadable));
            if (read.Complete && read.Accounts.All(a => a.Reserved == 0 && a.Incoming == 0) && open.Count == 0)
            {
                _history.Event("settled", phase, $"nothing in flight at {read.EndedAtMs / 1000.0:F1} s");
                return read;
            }

            if (DateTime.UtcNow > deadline)
            {
                _history.Event("not-settled", phase, $"still in flight after {options.SettleTimeout.TotalSeconds:F0} s: {open.Count} keys pending, "
                    + $"{read.Accounts.Count(a => a.Reserved != 0 || a.Incoming != 0)} accounts with money in flight, {read.Failed} reads failed");
                return read;
            }

            await Task.Delay(SettlePollInterval, cancellation);
        }
    }

    private Task ResolveAllAsync(Workload workload, IEnumerable<Movement> movements, CancellationToken cancellation) =>
        Parallel.ForEachAsync(movements, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentResolves, CancellationToken = cancellation }, async (movement, token) =>
        {
            var resolution = await workload.ResolveAsync(movement.Key, token);
            lock (_resolutions)
            {
                _resolutions[movement.Key] = resolution;
            }
        });

    private ChaosReport Report(DateTimeOffset startedAt, IReadOnlyList<PlannedFault> plan, IReadOnlyList<InjectedFault> faults, Verdict? verdict, string? error, string logs)
    {
        var movements = _history.Movements;
        int Resolved(Resolved status) => movements.Count(m => _resolutions.TryGetValue(m.Key, out var r) && r.Status == status);
        var counts = new MovementCounts(
            movements.Count,
            movements.Sum(m => m.Attempts.Count),
            movements.Count(m => m.AcknowledgedAtMs is not null),
            movements.Count(m => m.AcknowledgedAtMs is null && m.LastOutcome == Outcome.Fail),
            movements.Count(m => m.AcknowledgedAtMs is null && m.LastOutcome == Outcome.Unknown),
            Resolved(Chaos.Resolved.Committed),
            Resolved(Chaos.Resolved.Rejected),
            Resolved(Chaos.Resolved.NotFound),
            Resolved(Chaos.Resolved.Pending),
            movements.Count - _resolutions.Count(r => r.Value.Status != Chaos.Resolved.Unreadable),
            movements.GroupBy(m => m.Kind).ToDictionary(g => g.Key.ToString().ToLowerInvariant(), g => g.Count()));
        var messages = CountMessageFaults(logs);
        var violations = verdict?.Violations ?? [];
        var line = ChaosReport.Line(options.Seed, options.FaultPhase.TotalMinutes, faults.Count, messages, counts, violations.Count, error);
        var reads = _history.Reads;
        var availability = Availability.Of(faults, movements, _loadEndedAtMs);
        return new ChaosReport(
            options.Seed, options.FaultPhase.TotalMinutes, startedAt, (DateTimeOffset.UtcNow - startedAt).TotalSeconds,
            error is null && violations.Count == 0, line, plan, faults, messages, _history.Events, counts,
            reads.Count, reads.Count(r => r.Complete), availability, Availability.ByKind(availability), violations, verdict?.Notes ?? [], options.WorkDirectory.FullName, error);
    }

    /// <summary>Each delay and drop is a warning line in its silo's log (ChaosFaultFilter).</summary>
    private static MessageFaultCounts CountMessageFaults(string logs)
    {
        int delayed = 0, dropped = 0;
        foreach (var file in Directory.EnumerateFiles(logs, "silo*.log"))
        {
            using var reader = new StreamReader(new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            while (reader.ReadLine() is { } line)
            {
                delayed += line.Contains("Chaos: delayed", StringComparison.Ordinal) ? 1 : 0;
                dropped += line.Contains("Chaos: dropped", StringComparison.Ordinal) ? 1 : 0;
            }
        }

        return new MessageFaultCounts(delayed, dropped);
    }

    /// <summary>The report, and beside it the whole history (every key with its attempts and resolution, every read, every event).</summary>
    private async Task WriteAsync(ChaosReport report)
    {
        var file = options.ReportFile?.FullName ?? Path.Combine(options.WorkDirectory.FullName, "report.json");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(report, ChaosReport.Json));
        var history = new
        {
            Movements = _history.Movements.OrderBy(m => m.FirstInvokedAtMs).Select(m => MovementExcerpt.Of(m, _resolutions.GetValueOrDefault(m.Key))),
            Reads = _history.Reads,
            Events = _history.Events,
        };
        await using var stream = File.Create(Path.Combine(options.WorkDirectory.FullName, "history.json"));
        await JsonSerializer.SerializeAsync(stream, history, ChaosReport.Json);
    }
}
