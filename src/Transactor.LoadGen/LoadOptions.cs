namespace Transactor.LoadGen;

/// <summary>How accounts are picked for a transfer.</summary>
public enum Skew
{
    /// <summary>Every account equally likely.</summary>
    Uniform,

    /// <summary>Zipf-distributed: a few hot accounts take most transfers.</summary>
    Zipf,
}

/// <summary>What one load run does. See <c>--help</c> for each option.</summary>
public sealed record LoadOptions
{
    public Uri Target { get; init; } = new("http://localhost:5080");

    public int Clients { get; init; } = 64;

    /// <summary>Transfers to send; ignored when <see cref="Duration"/> is set.</summary>
    public long Transfers { get; init; } = 10_000;

    public TimeSpan? Duration { get; init; }

    public int Accounts { get; init; } = 1_000;

    public long InitialBalanceMinor { get; init; } = 1_000_000;

    public long MaxAmountMinor { get; init; } = 10_000;

    public Skew Skew { get; init; } = Skew.Uniform;

    public double ZipfExponent { get; init; } = 1.0;

    /// <summary>Open loop at this many transfers per second; null for closed loop (each client sends its next transfer when the last ends).</summary>
    public double? Rate { get; init; }

    public int Seed { get; init; } = 1;

    /// <summary>Share of clients (0 to 1) that back off politely on transient failures; the rest retry at once.</summary>
    public double PoliteShare { get; init; } = 1.0;

    /// <summary>Most attempts per transfer, the first included; then the client gives up on it.</summary>
    public int MaxAttempts { get; init; } = 8;

    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan BackoffCap { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>During bursts the offered load is multiplied by this (1 = no bursts).</summary>
    public double Overload { get; init; } = 1.0;

    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a setup request (open an account, fund it) keeps retrying transient failures before the run fails.</summary>
    public TimeSpan SetupTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>A prefix that keeps this run's accounts and idempotency keys apart from other runs'.</summary>
    public string RunId { get; init; } = Guid.NewGuid().ToString("N")[..8];

    /// <summary>
    /// With <see cref="Rate"/>: a true open loop. Every transfer is sent when it is due, on its own,
    /// whatever is still unanswered (not handed to one of <see cref="Clients"/> clients), so offered
    /// load really is the rate, up to <see cref="MaxInFlight"/> transfers in flight.
    /// </summary>
    public bool OpenLoop { get; init; }

    /// <summary>Safety cap of the true open loop: a transfer due while this many are in flight is not sent (counted as dropped by the generator).</summary>
    public int MaxInFlight { get; init; } = 10_000;

    /// <summary>Polite requests in flight at once (as many more wait); beyond that the polite client refuses its own request (counted, given up).</summary>
    public int BulkheadLimit { get; init; } = 512;

    /// <summary>Share of failed requests (0-1) within <see cref="BreakerSamplingDuration"/> that opens the polite clients' circuit breaker.</summary>
    public double BreakerFailureRatio { get; init; } = 0.5;

    /// <summary>Requests within <see cref="BreakerSamplingDuration"/> before the breaker judges the ratio.</summary>
    public int BreakerMinimumThroughput { get; init; } = 20;

    public TimeSpan BreakerSamplingDuration { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the breaker stays open before it lets one probe through (half-open); Polly accepts 0.5 s at least.</summary>
    public TimeSpan BreakerBreakDuration { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The polite clients' adaptive throttle: they send at most about this many requests per
    /// request the ledger accepted over the last 2 s, and refuse the rest themselves (0: off).
    /// </summary>
    public double ThrottleK { get; init; } = 2.0;

    /// <summary>Transfers per request: above 1, each client sends <c>POST /transfers/batch</c> with this many (closed loop only).</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>Most committed transfers kept for the final visibility check.</summary>
    public int MaxTrackedCommits { get; init; } = 1_000_000;
}
