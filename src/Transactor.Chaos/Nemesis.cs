using Transactor.Chaos.Processes;

namespace Transactor.Chaos;

/// <summary>The process-level faults the nemesis injects.</summary>
public enum FaultKind
{
    /// <summary>SIGKILL of a silo, restarted after a few seconds.</summary>
    KillSilo,

    /// <summary>SIGKILL of the API, restarted after a few seconds.</summary>
    KillApi,

    /// <summary>SIGSTOP of a silo for longer than the transfer lease, then SIGCONT.</summary>
    PauseSilo,

    /// <summary><c>pg_ctl stop -m immediate</c>, started again after a few seconds.</summary>
    CrashPostgres,

    /// <summary>SIGKILL of every silo and the API at once, all started again at once (a scenario, never in the seeded schedule).</summary>
    RestartCluster,
}

/// <summary>One fault of the schedule: when it may begin (ms into the fault phase), on which silo, for how long.</summary>
public sealed record PlannedFault(long NotBeforeMs, FaultKind Kind, int Silo, long DurationMs);

/// <summary>One fault as it happened: times in ms since the run began.</summary>
public sealed record InjectedFault(FaultKind Kind, string Target, long StartedAtMs, long EndedAtMs, string Detail);

/// <summary>
/// The process faults of a run, drawn from the seed alone: each kind once, in a seeded order, before
/// any repeats, so that a short run sees every kind; calm gaps between them let the ledger make progress.
/// </summary>
public static class FaultSchedule
{
    private static readonly TimeSpan FirstFaultAfter = TimeSpan.FromSeconds(3);

    /// <summary>The kinds a seeded schedule draws from, in the order the seed shuffles.</summary>
    public static IReadOnlyList<FaultKind> ScheduledKinds { get; } = [FaultKind.KillSilo, FaultKind.KillApi, FaultKind.PauseSilo, FaultKind.CrashPostgres];

    /// <summary>
    /// One fault after <paramref name="calm"/> of load, and nothing else: a scenario that measures how
    /// long the ledger serves nothing (docs/reliability.md, "Availability"). The killed silo is the last one.
    /// </summary>
    public static IReadOnlyList<PlannedFault> Alone(FaultKind kind, int silos, TimeSpan calm, TimeSpan down) =>
        [new PlannedFault((long)calm.TotalMilliseconds, kind, silos - 1, (long)down.TotalMilliseconds)];

    /// <summary>The schedule for a fault phase of <paramref name="phase"/>, from <paramref name="seed"/> alone.</summary>
    public static IReadOnlyList<PlannedFault> Plan(int seed, TimeSpan phase, int silos, TimeSpan lease)
    {
        var random = new Random(seed);
        var kinds = ScheduledKinds;
        var plan = new List<PlannedFault>();
        var cycle = new Queue<FaultKind>();
        for (var at = (long)FirstFaultAfter.TotalMilliseconds; at < phase.TotalMilliseconds;)
        {
            if (cycle.Count == 0)
            {
                var shuffled = kinds.OrderBy(_ => random.Next()).ToList();
                // No kind twice in a row across two rounds.
                if (plan.Count > 0 && shuffled[0] == plan[^1].Kind)
                {
                    shuffled.Add(shuffled[0]);
                    shuffled.RemoveAt(0);
                }

                foreach (var kind in shuffled)
                {
                    cycle.Enqueue(kind);
                }
            }

            var next = cycle.Dequeue();
            var duration = next switch
            {
                // Down long enough that callers time out and recovery takes over.
                FaultKind.KillSilo => random.Next(1_000, 6_000),
                FaultKind.KillApi => random.Next(500, 3_000),
                // Past the lease, sometimes past the point where the others declare the silo dead.
                FaultKind.PauseSilo => (long)lease.TotalMilliseconds + random.Next(1_000, 15_000),
                _ => random.Next(1_000, 6_000),
            };
            plan.Add(new PlannedFault(at, next, random.Next(silos), duration));
            at += duration + random.Next(3_000, 8_000);
        }

        return plan;
    }
}

/// <summary>
/// Injects the faults of a <see cref="FaultSchedule"/>, each no earlier than planned; message faults
/// (the silos' filter) are armed for the whole fault phase.
/// </summary>
internal sealed class Nemesis(ChaosRunOptions options, LedgerCluster cluster, History history)
{
    private readonly List<InjectedFault> _injected = [];

    public IReadOnlyList<InjectedFault> Injected => _injected;

    /// <summary>Injects the schedule until <paramref name="phase"/> has passed; every process is up again when it returns.</summary>
    public async Task RunAsync(IReadOnlyList<PlannedFault> plan, TimeSpan phase, CancellationToken cancellation)
    {
        var start = history.NowMs;
        var end = start + (long)phase.TotalMilliseconds;
        cluster.MessageFaultsArmed = true;
        history.Event("arm", "silos", $"message faults on: delay p={options.MessageDelayProbability} up to {options.MaxMessageDelay.TotalSeconds:F0} s, drop p={options.MessageDropProbability}");
        try
        {
            foreach (var fault in plan)
            {
                var wait = start + fault.NotBeforeMs - history.NowMs;
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(wait), cancellation);
                }

                // A fault that begins within the phase runs to its end, however late earlier faults
                // (restarts on a slow machine) made it begin; the phase ends after it.
                if (history.NowMs >= end)
                {
                    break;
                }

                await Inject(fault, cancellation);
            }

            var rest = end - history.NowMs;
            if (rest > 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(rest), cancellation);
            }
        }
        finally
        {
            cluster.MessageFaultsArmed = false;
            history.Event("disarm", "silos", "message faults off");
        }
    }

    private async Task Inject(PlannedFault fault, CancellationToken cancellation)
    {
        var duration = TimeSpan.FromMilliseconds(fault.DurationMs);
        switch (fault.Kind)
        {
            case FaultKind.CrashPostgres:
            {
                var started = history.Event("fault", "postgres", "pg_ctl stop -m immediate").AtMs;
                await cluster.Postgres.CrashAsync(cancellation);
                await Task.Delay(duration, cancellation);
                await cluster.Postgres.StartAsync(cancellation);
                history.Event("heal", "postgres", "started again");
                _injected.Add(new InjectedFault(fault.Kind, "postgres", started, history.NowMs, $"down {duration.TotalSeconds:F1} s"));
                break;
            }

            case FaultKind.KillApi:
                await KillAndRestart(cluster.Api, fault, duration, cancellation);
                break;

            case FaultKind.KillSilo:
                await KillAndRestart(cluster.Silos[fault.Silo], fault, duration, cancellation);
                break;

            case FaultKind.RestartCluster:
            {
                var started = history.NowMs;
                await cluster.RestartAllAsync(declareDead: false, cancellation);
                _injected.Add(new InjectedFault(fault.Kind, "cluster", started, history.NowMs, "every silo and the API killed and started again at once"));
                break;
            }

            case FaultKind.PauseSilo:
            {
                var silo = cluster.Silos[fault.Silo];
                await silo.Gate.WaitAsync(cancellation);
                try
                {
                    var started = history.Event("fault", silo.Name, $"SIGSTOP for {duration.TotalSeconds:F1} s (lease {options.Lease.TotalSeconds:F0} s)").AtMs;
                    await silo.PauseAsync();
                    await Task.Delay(duration, cancellation);
                    await silo.ResumeAsync();
                    history.Event("heal", silo.Name, "SIGCONT");
                    _injected.Add(new InjectedFault(fault.Kind, silo.Name, started, history.NowMs, $"paused {duration.TotalSeconds:F1} s"));
                }
                finally
                {
                    silo.Gate.Release();
                }

                break;
            }
        }
    }

    private async Task KillAndRestart(LedgerNode node, PlannedFault fault, TimeSpan downtime, CancellationToken cancellation)
    {
        await node.Gate.WaitAsync(cancellation);
        try
        {
            var started = history.Event("fault", node.Name, $"SIGKILL, restart after {downtime.TotalSeconds:F1} s").AtMs;
            await node.KillAsync();
            await Task.Delay(downtime, cancellation);
            var healthy = await cluster.StartNodeAsync(node, cancellation);
            _injected.Add(new InjectedFault(fault.Kind, node.Name, started, history.NowMs, healthy ? $"down {downtime.TotalSeconds:F1} s" : "did not come back healthy"));
        }
        finally
        {
            node.Gate.Release();
        }
    }
}
