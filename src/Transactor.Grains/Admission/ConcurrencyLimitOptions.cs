namespace Transactor.Grains;

/// <summary>Whether a concurrency limit stays where configuration puts it or follows observed latency.</summary>
public enum LimitMode
{
    /// <summary>The configured limit, always.</summary>
    Fixed,

    /// <summary>Starts at the configured limit, then follows latency (<see cref="AdaptiveConcurrencyLimit"/>).</summary>
    Adaptive,
}

/// <summary>
/// How an adaptive concurrency limit moves (sections <c>Transactor:Transfers:Admission</c> for a
/// silo's movements and <c>Transactor:Api:Admission</c> for the API's requests). The configured
/// fixed limit (<c>MaxConcurrentTransfers</c>, <c>MaxConcurrentRequests</c>) is where it starts.
/// </summary>
public sealed class ConcurrencyLimitOptions
{
    public LimitMode Mode { get; set; } = LimitMode.Fixed;

    /// <summary>The limit never goes below this, however slow the ledger: some work always proceeds.</summary>
    public int MinLimit { get; set; } = 4;

    /// <summary>The limit never goes above this, however fast the ledger answers.</summary>
    public int MaxLimit { get; set; } = 1_024;

    /// <summary>
    /// The latency (at <see cref="TargetPercentile"/>, of admitted work from admission to end)
    /// above which the limit backs off. Set it above what the work takes without contention.
    /// </summary>
    public TimeSpan TargetLatency { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The percentile of a window's latencies compared with <see cref="TargetLatency"/> (0-100).</summary>
    public double TargetPercentile { get; set; } = 90;

    /// <summary>How long samples are gathered before the limit is reconsidered.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A window is not judged on fewer samples than this; it stays open until it has them.</summary>
    public int MinSamplesPerWindow { get; set; } = 20;

    /// <summary>The limit is multiplied by this when a window's latency is over target (0-1).</summary>
    public double BackoffRatio { get; set; } = 0.8;

    /// <summary>Added to the limit after a window within target in which at least half the limit was used.</summary>
    public int IncreaseStep { get; set; } = 2;

    /// <summary>
    /// The longest a request waits in the queue for a place while the queue keeps draining (a
    /// burst); one that waited longer is refused when it comes up (or by the limiter's sweep),
    /// before any of its work starts. Null: no bound but the queue's size. Applies in both modes.
    /// </summary>
    public TimeSpan? QueueTimeout { get; set; }

    /// <summary>
    /// The longest wait once the queue has not been empty for <see cref="StandingQueueInterval"/>:
    /// a queue that stands is overload, not a burst, and waiting in it only adds latency to the
    /// requests that will be served anyway (the idea of CoDel, and of Facebook's "controlled delay"
    /// queues). Short, so that what is admitted was not kept waiting and what cannot be served is
    /// refused early. Null: <see cref="QueueTimeout"/> always.
    /// </summary>
    public TimeSpan? StandingQueueTimeout { get; set; }

    /// <summary>How long the queue must stay non-empty before it counts as standing.</summary>
    public TimeSpan StandingQueueInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>A reason the options cannot be used, or null when they can.</summary>
    public string? Invalid() =>
        QueueTimeout <= TimeSpan.Zero ? "QueueTimeout must be positive when set."
        : StandingQueueTimeout <= TimeSpan.Zero ? "StandingQueueTimeout must be positive when set."
        : StandingQueueInterval <= TimeSpan.Zero ? "StandingQueueInterval must be positive."
        : MinLimit < 1 ? "MinLimit must be at least 1."
        : MaxLimit < MinLimit ? "MaxLimit must not be below MinLimit."
        : TargetLatency <= TimeSpan.Zero ? "TargetLatency must be positive."
        : TargetPercentile is <= 0 or > 100 ? "TargetPercentile must be above 0 and at most 100."
        : Window <= TimeSpan.Zero ? "Window must be positive."
        : MinSamplesPerWindow < 1 ? "MinSamplesPerWindow must be at least 1."
        : BackoffRatio is <= 0 or >= 1 ? "BackoffRatio must be between 0 and 1 (exclusive)."
        : IncreaseStep < 1 ? "IncreaseStep must be at least 1."
        : null;
}
