using System.Collections.Concurrent;
using System.Diagnostics;
using HdrHistogram;

namespace Transactor.Api.Metrics;

/// <summary>
/// What <c>GET /metrics</c> reports about this API process: requests, latency percentiles (an
/// HdrHistogram of fixed size) and movement outcomes. Counts start at zero when the process starts.
/// </summary>
public sealed class ApiMetrics
{
    /// <summary>Latencies above this are recorded as this (the histogram's fixed range).</summary>
    private static readonly long MaxTrackedTicks = Stopwatch.Frequency * 60;

    private readonly LongConcurrentHistogram _latency = new(1, MaxTrackedTicks, 3);
    private readonly ConcurrentDictionary<string, long> _rejected = new(StringComparer.Ordinal);
    private long _requests;
    private long _successes;
    private long _inFlight;
    private long _committed;
    private long _replayed;
    private long _tooManyRequests;

    /// <summary>Ledger requests answered 429 since the process started.</summary>
    public long TooManyRequests => Interlocked.Read(ref _tooManyRequests);

    public long Started()
    {
        Interlocked.Increment(ref _inFlight);
        return Stopwatch.GetTimestamp();
    }

    public void Finished(long startedAt, int statusCode)
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Increment(ref _requests);
        if (statusCode is >= 200 and < 300)
        {
            Interlocked.Increment(ref _successes);
        }
        else if (statusCode == StatusCodes.Status429TooManyRequests)
        {
            Interlocked.Increment(ref _tooManyRequests);
        }

        _latency.RecordValue(Math.Clamp(Stopwatch.GetTimestamp() - startedAt, 1, MaxTrackedTicks));
    }

    /// <summary>Successes over requests, 1 when there were none; never above 1.</summary>
    internal static double SuccessRate(long successes, long requests) =>
        requests == 0 ? 1.0 : Math.Round((double)Math.Min(successes, requests) / requests, 6);

    public void Outcome(TransferResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Replayed)
        {
            Interlocked.Increment(ref _replayed);
            return;
        }

        if (result.Status == TransferStatus.Committed)
        {
            Interlocked.Increment(ref _committed);
        }
        else if (result.Status == TransferStatus.Rejected)
        {
            _rejected.AddOrUpdate(result.Reason.ToCode(), 1, (_, n) => n + 1);
        }
    }

    public MetricsSnapshot Snapshot(int? silos, long? activations, AdmissionSnapshot? admission = null, ChaosSnapshot? chaos = null)
    {
        // Successes first: Finished counts a request before its success, so every success read here
        // belongs to a request the later read counts, and the rate cannot exceed 1. (Read the other
        // way round, requests finishing between the two reads made it 1.000279 under load.)
        var successes = Interlocked.Read(ref _successes);
        var requests = Interlocked.Read(ref _requests);
        var latency = _latency.Copy();
        double Ms(double ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 3);
        double Percentile(double p) => latency.TotalCount == 0 ? 0 : Ms(latency.GetValueAtPercentile(p));
        return new MetricsSnapshot(
            requests,
            SuccessRate(successes, requests),
            latency.TotalCount == 0 ? 0 : Ms(latency.GetMean()),
            Percentile(50),
            Percentile(90),
            Percentile(99),
            latency.TotalCount == 0 ? 0 : Ms(latency.GetMaxValue()),
            Interlocked.Read(ref _committed),
            new SortedDictionary<string, long>(_rejected, StringComparer.Ordinal),
            Interlocked.Read(ref _replayed),
            Interlocked.Read(ref _inFlight),
            silos,
            activations,
            admission,
            chaos);
    }
}

/// <summary>The body of <c>GET /metrics</c>. Latencies are in milliseconds over all API requests since start.</summary>
public sealed record MetricsSnapshot(
    long RequestsTotal,
    double SuccessRate,
    double AvgLatencyMs,
    double P50LatencyMs,
    double P90LatencyMs,
    double P99LatencyMs,
    double MaxLatencyMs,
    long TransfersCommitted,
    IReadOnlyDictionary<string, long> TransfersRejected,
    long TransfersReplayed,
    long InFlight,
    int? Silos,
    long? Activations,
    AdmissionSnapshot? Admission,
    ChaosSnapshot? Chaos);

/// <summary>
/// Chaos mode of the embedded silo when it is on (null when off, and in client mode, where each
/// silo reports <c>transactor.chaos.faults</c> in its own metrics and logs a warning at start).
/// </summary>
public sealed record ChaosSnapshot(
    bool Active,
    string Silo,
    double DelayProbability,
    double MaxDelayMs,
    double DropProbability,
    double StorageWriteFailureProbability,
    double StorageReadFailureProbability,
    int? Seed,
    IReadOnlyDictionary<string, long> Injected);

/// <summary>
/// The concurrency limits now: the API's limiter of money-moving requests and, when the silo runs
/// in this process (embedded), the silo's admission of movements. <c>Shed</c> counts requests
/// refused since start, at once with a full queue or after waiting past the queue's bound;
/// <c>ApiQueueTimeouts</c> counts the latter alone.
/// </summary>
public sealed record AdmissionSnapshot(
    string ApiMode,
    int ApiLimit,
    int ApiInFlight,
    long ApiQueued,
    long ApiShed,
    long ApiQueueTimeouts,
    string? SiloMode,
    int? SiloLimit,
    long? SiloQueued,
    long? SiloShed);
