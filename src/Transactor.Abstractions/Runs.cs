namespace Transactor;

/// <summary>
/// Every load run of the cluster (grain key 0), so that every API instance shows every run, whichever
/// instance executes it (docs/events.md, Runs). The API process that launches a run executes it and
/// reports its whole view about four times a second (<see cref="Report"/>); the registry keeps the
/// latest view, answers viewers, passes a cancel on to the executor in the answer to its next report,
/// and ends as <c>abandoned</c> a run whose executor has not reported within the lease it registered
/// with (it died, stopped, or lost the cluster). It keeps at most <see cref="LedgerRuns.MaxKept"/>
/// runs, ended ones for at most <see cref="LedgerRuns.KeepEndedFor"/>; it is written to storage only
/// when a run starts, is asked to cancel, or ends, never for progress. It is off the transfer path:
/// a run's transfers are ordinary coordinator calls.
/// </summary>
[Alias("Transactor.IRunRegistryGrain")]
public interface IRunRegistryGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// Registers a run its executor is about to start; it must report at least once per
    /// <paramref name="lease"/> (clamped to <see cref="LedgerRuns.MinLease"/>-<see cref="LedgerRuns.MaxLease"/>)
    /// or it is ended as abandoned. False when <see cref="LedgerRuns.MaxKept"/> runs are active.
    /// Registering a run that is registered already changes nothing and answers true.
    /// </summary>
    [Alias("Register"), ResponseTimeout(CallTimeouts.Patient)]
    Task<bool> Register(RunView run, TimeSpan lease);

    /// <summary>
    /// The executor's latest view of its run. The answer says whether a viewer asked to cancel it, or
    /// whether the executor must stop (the registry ended it as abandoned, or does not know it).
    /// A view of an ended run is kept as its final one. A run the registry does not keep (its
    /// registration was lost) is taken back when there is room, with <paramref name="lease"/>.
    /// </summary>
    [Alias("Report"), ResponseTimeout(CallTimeouts.Patient)]
    Task<RunVerdict> Report(RunView run, TimeSpan lease);

    /// <summary>Asks a run to stop (its executor hears it in the answer to its next report); the run as it stands, or null when not kept.</summary>
    [Alias("Cancel"), ResponseTimeout(CallTimeouts.Patient)]
    Task<RunView?> Cancel(string runId);

    /// <summary>A kept run, or null.</summary>
    [Alias("Get")]
    Task<RunView?> Get(string runId);

    /// <summary>
    /// Every kept run, newest first; null when nothing changed since (<paramref name="generation"/>,
    /// <paramref name="version"/>) of an earlier answer, so a viewer polling it costs little.
    /// </summary>
    [Alias("List")]
    Task<RunList?> List(Guid generation, long version);
}

/// <summary>The registry's answer to an executor's report.</summary>
[GenerateSerializer]
public enum RunVerdict
{
    /// <summary>Go on.</summary>
    Continue = 0,

    /// <summary>A viewer asked to cancel the run: transfers in flight end, no new ones start, then the books are checked.</summary>
    Cancel = 1,

    /// <summary>The registry ended the run (abandoned: the executor was silent past its lease) or does not know it: stop, the registry keeps its verdict.</summary>
    Stop = 2,
}

/// <summary>A run as viewers see it. <c>Done</c> of <c>Count</c> transfers have ended (committed, rejected, or given up as unfinished).</summary>
/// <param name="State"><c>opening</c> (accounts), <c>running</c>, <c>checking</c> (the books), then <c>done</c>, <c>cancelled</c>, <c>failed</c> or <c>abandoned</c> (its executing API process stopped or went silent).</param>
/// <param name="PerSecond">Transfers ended per second since the run's transfers began.</param>
/// <param name="Executor">The API process that executes it (the <c>stream</c> name of its <c>ready</c> event).</param>
[GenerateSerializer, Immutable, Alias("Transactor.RunView")]
public sealed record RunView(
    [property: Id(0)] string Id,
    [property: Id(1)] string? Name,
    [property: Id(2)] long Count,
    [property: Id(3)] int Accounts,
    [property: Id(4)] string State,
    [property: Id(5)] bool CancelRequested,
    [property: Id(6)] long Done,
    [property: Id(7)] long Committed,
    [property: Id(8)] long Rejected,
    [property: Id(9)] long Unfinished,
    [property: Id(10)] double PerSecond,
    [property: Id(11)] double Seconds,
    [property: Id(12)] DateTimeOffset StartedAt,
    [property: Id(13)] DateTimeOffset? EndedAt,
    [property: Id(14)] BooksView? Books,
    [property: Id(15)] string? Error,
    [property: Id(16)] string? Executor = null)
{
    /// <summary>True once the run has ended, whichever way.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Ended => EndedAt is not null;
}

/// <summary>The books check of a run: the money in its accounts (available + held + reserved) equals what was deposited into them.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.BooksView")]
public sealed record BooksView(
    [property: Id(0)] bool Balanced,
    [property: Id(1)] long ExpectedMinor,
    [property: Id(2)] long ActualMinor,
    [property: Id(3)] long InFlightMinor,
    [property: Id(4)] long Accounts);

/// <summary>Every kept run, newest first, with the registry activation's <paramref name="Generation"/> and the <paramref name="Version"/> of this list.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.RunList")]
public sealed record RunList(
    [property: Id(0)] Guid Generation,
    [property: Id(1)] long Version,
    [property: Id(2)] IReadOnlyList<RunView> Runs);

/// <summary>Bounds and timings of the run registry.</summary>
public static class LedgerRuns
{
    /// <summary>Runs kept, active and ended; a new one evicts the oldest ended, and is refused when all are active.</summary>
    public const int MaxKept = 20;

    /// <summary>The longest a run id may be.</summary>
    public const int MaxIdLength = 64;

    /// <summary>How long an ended run is kept at most.</summary>
    public static readonly TimeSpan KeepEndedFor = TimeSpan.FromHours(24);

    /// <summary>The shortest lease an executor may register with.</summary>
    public static readonly TimeSpan MinLease = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest lease an executor may register with.</summary>
    public static readonly TimeSpan MaxLease = TimeSpan.FromMinutes(5);

    /// <summary>The registry's grain.</summary>
    public static IRunRegistryGrain Runs(this IGrainFactory grains)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return grains.GetGrain<IRunRegistryGrain>(0);
    }
}
