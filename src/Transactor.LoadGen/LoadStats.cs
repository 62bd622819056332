using System.Collections.Concurrent;
using System.Diagnostics;
using HdrHistogram;

namespace Transactor.LoadGen;

/// <summary>Counters of a run, safe to update from every client at once. The latency histogram has a fixed size.</summary>
public sealed class LoadStats
{
    private static readonly long MaxTrackedTicks = Stopwatch.Frequency * 120;

    private readonly LongConcurrentHistogram _latency = new(1, MaxTrackedTicks, 3);

    /// <summary>Of each transfer that got an outcome, the one HTTP exchange that gave it: what an admitted request saw.</summary>
    private readonly LongConcurrentHistogram _service = new(1, MaxTrackedTicks, 3);
    private long _transfers;
    private long _committed;
    private long _attempts;
    private long _retries;
    private long _rateLimited;
    private long _gaveUp;
    private long _replayed;
    private long _inFlight;
    private long _generatorDropped;
    private long _peakInFlight;
    private long _breakerOpenings;
    private long _breakerClosings;
    private long _breakerOpenTicks;
    private long _breakerOpenedAt;
    private readonly Lock _breakerLock = new();

    public ConcurrentDictionary<string, long> Rejected { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, long> Errors { get; } = new(StringComparer.Ordinal);

    public long Transfers => Interlocked.Read(ref _transfers);

    public long Committed => Interlocked.Read(ref _committed);

    public long Attempts => Interlocked.Read(ref _attempts);

    public long InFlight => Interlocked.Read(ref _inFlight);

    public void Attempt() => Interlocked.Increment(ref _attempts);

    public void Retry() => Interlocked.Increment(ref _retries);

    public void RateLimited() => Interlocked.Increment(ref _rateLimited);

    public void Error(string kind) => Errors.AddOrUpdate(kind, 1, (_, n) => n + 1);

    public void DroppedByGenerator() => Interlocked.Increment(ref _generatorDropped);

    public void Started()
    {
        var now = Interlocked.Increment(ref _inFlight);
        long peak;
        while (now > (peak = Interlocked.Read(ref _peakInFlight)) && Interlocked.CompareExchange(ref _peakInFlight, now, peak) != peak)
        {
        }
    }

    public long PeakInFlight => Interlocked.Read(ref _peakInFlight);

    public long BreakerOpenings => Interlocked.Read(ref _breakerOpenings);

    /// <summary>The polite clients' circuit breaker opened: they stop sending until it half-opens.</summary>
    public void BreakerOpened()
    {
        lock (_breakerLock)
        {
            _breakerOpenings++;
            _breakerOpenedAt = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>The breaker lets a probe through: the time it was open ends here.</summary>
    public void BreakerHalfOpened() => EndOpen();

    public void BreakerClosed()
    {
        EndOpen();
        Interlocked.Increment(ref _breakerClosings);
    }

    /// <summary>Time the breaker spent open, including an opening still running now.</summary>
    public TimeSpan BreakerOpenTime()
    {
        lock (_breakerLock)
        {
            var running = _breakerOpenedAt != 0 ? Stopwatch.GetTimestamp() - _breakerOpenedAt : 0;
            return TimeSpan.FromTicks((long)((_breakerOpenTicks + running) * (double)TimeSpan.TicksPerSecond / Stopwatch.Frequency));
        }
    }

    private void EndOpen()
    {
        lock (_breakerLock)
        {
            if (_breakerOpenedAt != 0)
            {
                _breakerOpenTicks += Stopwatch.GetTimestamp() - _breakerOpenedAt;
                _breakerOpenedAt = 0;
            }
        }
    }

    /// <summary>
    /// A transfer ended: committed, rejected with a code, or given up (code null, committed false).
    /// <paramref name="latencyTicks"/> runs from when the transfer was due to its end, retries included;
    /// <paramref name="answerTicks"/> is the final request alone, when the ledger answered it with an outcome.
    /// </summary>
    public void Ended(long latencyTicks, bool committed, string? rejectedCode, bool gaveUp, bool replayed, long? answerTicks = null)
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Increment(ref _transfers);
        if (replayed)
        {
            Interlocked.Increment(ref _replayed);
        }

        if (gaveUp)
        {
            Interlocked.Increment(ref _gaveUp);
            return;
        }

        _latency.RecordValue(Math.Clamp(latencyTicks, 1, MaxTrackedTicks));
        if (answerTicks is { } answer)
        {
            _service.RecordValue(Math.Clamp(answer, 1, MaxTrackedTicks));
        }

        if (committed)
        {
            Interlocked.Increment(ref _committed);
        }
        else if (rejectedCode is not null)
        {
            Rejected.AddOrUpdate(rejectedCode, 1, (_, n) => n + 1);
        }
    }

    public double P99Ms()
    {
        var copy = _latency.Copy();
        return copy.TotalCount == 0 ? 0 : Ms(copy.GetValueAtPercentile(99));
    }

    public Summary Summarize(LoadOptions options, TimeSpan elapsed, IReadOnlyList<string> checkFailures)
    {
        var latency = _latency.Copy();
        var service = _service.Copy();
        var transfers = Transfers;
        double P(double p) => latency.TotalCount == 0 ? 0 : Ms(latency.GetValueAtPercentile(p));
        double S(double p) => service.TotalCount == 0 ? 0 : Ms(service.GetValueAtPercentile(p));
        var attempts = Attempts;
        return new Summary(
            options.Target.ToString(),
            options.Clients,
            options.Rate,
            options.Skew.ToString().ToLowerInvariant(),
            options.PoliteShare,
            options.Overload,
            options.Seed,
            Math.Round(elapsed.TotalSeconds, 3),
            transfers,
            Committed,
            transfers == 0 ? 0 : Math.Round(100.0 * Committed / transfers, 3),
            new SortedDictionary<string, long>(Rejected, StringComparer.Ordinal),
            attempts == 0 ? 0 : Math.Round(100.0 * Interlocked.Read(ref _rateLimited) / attempts, 3),
            Interlocked.Read(ref _rateLimited),
            Interlocked.Read(ref _retries),
            Interlocked.Read(ref _replayed),
            Interlocked.Read(ref _gaveUp),
            Interlocked.Read(ref _generatorDropped),
            new SortedDictionary<string, long>(Errors, StringComparer.Ordinal),
            elapsed.TotalSeconds == 0 ? 0 : Math.Round(transfers / elapsed.TotalSeconds, 1),
            elapsed.TotalSeconds == 0 ? 0 : Math.Round(Committed / elapsed.TotalSeconds, 1),
            latency.TotalCount == 0 ? 0 : Math.Round(Ms((long)latency.GetMean()), 3),
            P(50),
            P(90),
            P(99),
            latency.TotalCount == 0 ? 0 : Ms(latency.GetMaxValue()),
            S(50),
            S(99),
            checkFailures.Count == 0,
            checkFailures,
            options.OpenLoop && options.Rate is not null,
            options.MaxInFlight,
            PeakInFlight,
            BreakerOpenings,
            Interlocked.Read(ref _breakerClosings),
            Math.Round(BreakerOpenTime().TotalSeconds, 3));
    }

    private static double Ms(long ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 3);
}

/// <summary>The outcome of a run, printed and written as JSON (snake_case).</summary>
public sealed record Summary(
    string Target,
    int Clients,
    double? RatePerSecond,
    string Skew,
    double PoliteShare,
    double Overload,
    int Seed,
    double ElapsedSeconds,
    long Transfers,
    long Committed,
    double SuccessPercent,
    IReadOnlyDictionary<string, long> RejectedByReason,
    double RateLimitedPercent,
    long RateLimitedResponses,
    long Retries,
    long DuplicatesPrevented,
    long GaveUp,
    long DroppedByGenerator,
    IReadOnlyDictionary<string, long> ErrorsByKind,
    double ThroughputPerSecond,
    double CommittedPerSecond,
    double AvgLatencyMs,
    double P50LatencyMs,
    double P90LatencyMs,
    double P99LatencyMs,
    double MaxLatencyMs,
    double AnsweredP50LatencyMs,
    double AnsweredP99LatencyMs,
    bool BooksBalanced,
    IReadOnlyList<string> CheckFailures,
    bool OpenLoop,
    int MaxInFlight,
    long PeakInFlight,
    long BreakerOpenings,
    long BreakerClosings,
    double BreakerOpenSeconds);
