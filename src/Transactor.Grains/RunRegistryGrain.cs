using Microsoft.Extensions.Logging;

namespace Transactor.Grains;

/// <summary>The stored state of the <see cref="RunRegistryGrain"/>: the kept runs, oldest first.</summary>
[GenerateSerializer, Alias("Transactor.RunRegistryState")]
public sealed class RunRegistryState
{
    [Id(0)] public List<RunEntry> Runs { get; set; } = [];
}

/// <summary>One kept run: its latest view, and the lease its executor registered with.</summary>
[GenerateSerializer, Alias("Transactor.RunEntry")]
public sealed class RunEntry
{
    [Id(0)] public RunView View { get; set; } = null!;

    [Id(1)] public TimeSpan Lease { get; set; }
}

/// <summary>
/// See <see cref="IRunRegistryGrain"/>. Progress reports (about four a second per active run) change
/// only memory; a run's start, a cancel and a run's end are written. When the activation is lost
/// (its silo died), the next one reads the runs back, and each active run's lease starts again from
/// then: a live executor reports within a fraction of a second (with its whole view, so its progress
/// is back at once), a dead one's run is ended as abandoned one lease later.
/// </summary>
public sealed partial class RunRegistryGrain(
    [PersistentState("runs", StorageNames.Ledger)] IPersistentState<RunRegistryState> state,
    TimeProvider time,
    ILogger<RunRegistryGrain> logger) : Grain, IRunRegistryGrain
{
    private readonly Guid _generation = Guid.NewGuid();
    private readonly Dictionary<string, long> _heardAt = new(StringComparer.Ordinal);
    private long _activatedAt;
    private long _version = 1;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _activatedAt = time.GetTimestamp();
        return base.OnActivateAsync(cancellationToken);
    }

    public async Task<bool> Register(RunView run, TimeSpan lease)
    {
        Check(run);
        await Tidy();
        var runs = state.State.Runs;
        if (Find(run.Id) is not null)
        {
            return true;
        }

        while (runs.Count >= LedgerRuns.MaxKept && runs.FindIndex(r => r.View.Ended) is var ended and >= 0)
        {
            _heardAt.Remove(runs[ended].View.Id);
            runs.RemoveAt(ended);
        }

        if (runs.Count >= LedgerRuns.MaxKept)
        {
            return false;
        }

        runs.Add(new RunEntry { View = run, Lease = Clamp(lease) });
        _heardAt[run.Id] = time.GetTimestamp();
        _version++;
        await state.WriteStateAsync();
        return true;
    }

    public async Task<RunVerdict> Report(RunView run, TimeSpan lease)
    {
        Check(run);
        await Tidy();
        var entry = Find(run.Id);
        if (entry is null)
        {
            // Not kept (evicted, or its registration was lost with storage kept in a silo's memory):
            // an active run is taken back if there is room, as a registration would be.
            return !run.Ended && await Register(run, lease) ? Verdict(Find(run.Id)!) : RunVerdict.Stop;
        }

        if (entry.View.Ended)
        {
            // Its end stands: ended by its executor already, or abandoned here.
            return RunVerdict.Stop;
        }

        entry.View = run with { CancelRequested = run.CancelRequested || entry.View.CancelRequested };
        entry.Lease = Clamp(lease);
        _heardAt[run.Id] = time.GetTimestamp();
        _version++;
        if (run.Ended)
        {
            LogRunEnded(logger, run.Id, run.State);
            await state.WriteStateAsync();
        }

        return Verdict(entry);
    }

    public async Task<RunView?> Cancel(string runId)
    {
        ArgumentNullException.ThrowIfNull(runId);
        await Tidy();
        if (Find(runId) is not { } entry)
        {
            return null;
        }

        if (!entry.View.Ended && !entry.View.CancelRequested)
        {
            entry.View = entry.View with { CancelRequested = true };
            _version++;
            await state.WriteStateAsync();
        }

        return entry.View;
    }

    public async Task<RunView?> Get(string runId)
    {
        ArgumentNullException.ThrowIfNull(runId);
        await Tidy();
        return Find(runId)?.View;
    }

    public async Task<RunList?> List(Guid generation, long version)
    {
        await Tidy();
        if (generation == _generation && version == _version)
        {
            return null;
        }

        var runs = state.State.Runs;
        var views = new RunView[runs.Count];
        for (var i = 0; i < runs.Count; i++)
        {
            views[i] = runs[runs.Count - 1 - i].View;
        }

        return new RunList(_generation, _version, views);
    }

    private static RunVerdict Verdict(RunEntry entry) => entry.View.CancelRequested ? RunVerdict.Cancel : RunVerdict.Continue;

    private RunEntry? Find(string runId) => state.State.Runs.Find(r => string.Equals(r.View.Id, runId, StringComparison.Ordinal));

    /// <summary>
    /// Ends as abandoned every active run whose executor has been silent past its lease, and forgets
    /// ended runs older than <see cref="LedgerRuns.KeepEndedFor"/>; writes when either happened.
    /// At most <see cref="LedgerRuns.MaxKept"/> runs to look at.
    /// </summary>
    private async Task Tidy()
    {
        var now = time.GetUtcNow();
        var changed = false;
        var runs = state.State.Runs;
        foreach (var entry in runs)
        {
            var silentFor = time.GetElapsedTime(_heardAt.TryGetValue(entry.View.Id, out var at) ? at : _activatedAt);
            if (!entry.View.Ended && silentFor > entry.Lease)
            {
                LogRunAbandoned(logger, entry.View.Id, entry.View.Executor, silentFor);
                entry.View = entry.View with
                {
                    State = "abandoned",
                    EndedAt = now,
                    Error = $"The API process executing it ({entry.View.Executor ?? "unknown"}) stopped reporting for {Math.Round(silentFor.TotalSeconds, 1)} s: it stopped, died or lost the cluster. Its transfers that ended stand; the books check was not done.",
                };
                changed = true;
            }
        }

        changed |= runs.RemoveAll(r => r.View.EndedAt is { } ended && now - ended > LedgerRuns.KeepEndedFor) > 0;
        if (changed)
        {
            _version++;
            await state.WriteStateAsync();
        }
    }

    private static TimeSpan Clamp(TimeSpan lease) =>
        lease < LedgerRuns.MinLease ? LedgerRuns.MinLease : lease > LedgerRuns.MaxLease ? LedgerRuns.MaxLease : lease;

    private static void Check(RunView run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (string.IsNullOrEmpty(run.Id) || run.Id.Length > LedgerRuns.MaxIdLength)
        {
            throw new ArgumentException($"A run's id is 1-{LedgerRuns.MaxIdLength} characters.", nameof(run));
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} ended: {State}")]
    private static partial void LogRunEnded(ILogger logger, string runId, string state);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId} abandoned: its executor {Executor} was silent for {SilentFor}")]
    private static partial void LogRunAbandoned(ILogger logger, string runId, string? executor, TimeSpan silentFor);
}
