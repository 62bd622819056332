namespace Transactor.Grains;

/// <summary>A change of a concurrency limit and the window that caused it.</summary>
public readonly record struct LimitChange(int From, int To, TimeSpan ObservedLatency, int Samples);

/// <summary>
/// An additive-increase, multiplicative-decrease concurrency limit driven by latency, in the spirit
/// of Netflix's concurrency-limits (its AIMD limit, judged per window rather than per sample so
/// that one slow request does not halve the limit). Latencies of admitted work are gathered for
/// <see cref="ConcurrencyLimitOptions.Window"/>; then, when the window's percentile latency is over
/// target, the limit is multiplied by <see cref="ConcurrencyLimitOptions.BackoffRatio"/>; when it is
/// within target and the window used at least half the limit, <see cref="ConcurrencyLimitOptions.IncreaseStep"/>
/// is added. A limit that was not used is not raised: it would only be raised without evidence.
/// </summary>
/// <remarks>Not thread-safe: its owner (<see cref="AdaptiveConcurrencyLimiter"/>) calls it under its lock.</remarks>
public sealed class AdaptiveConcurrencyLimit
{
    /// <summary>Samples kept per window; beyond that new ones overwrite old ones in turn, so memory stays fixed.</summary>
    public const int MaxSamplesPerWindow = 1_024;

    private readonly ConcurrencyLimitOptions _options;
    private readonly TimeProvider _time;
    private readonly double[] _samplesMs = new double[MaxSamplesPerWindow];
    private long _windowStarted;
    private int _samples;
    private int _maxInFlight;

    public AdaptiveConcurrencyLimit(int initialLimit, ConcurrencyLimitOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        if (options.Invalid() is { } invalid)
        {
            throw new ArgumentException(invalid, nameof(options));
        }

        _options = options;
        _time = time;
        Limit = Math.Clamp(initialLimit, options.MinLimit, options.MaxLimit);
        _windowStarted = time.GetTimestamp();
    }

    public int Limit { get; private set; }

    /// <summary>
    /// Records that a piece of admitted work ended after <paramref name="latency"/>, with
    /// <paramref name="inFlight"/> pieces in flight when it began. Returns the change when this
    /// sample closed a window that moved the limit.
    /// </summary>
    public LimitChange? OnSample(TimeSpan latency, int inFlight)
    {
        _samplesMs[_samples % MaxSamplesPerWindow] = latency.TotalMilliseconds;
        _samples++;
        _maxInFlight = Math.Max(_maxInFlight, inFlight);
        var now = _time.GetTimestamp();
        if (_time.GetElapsedTime(_windowStarted, now) < _options.Window || _samples < _options.MinSamplesPerWindow)
        {
            return null;
        }

        var count = Math.Min(_samples, MaxSamplesPerWindow);
        var observed = TimeSpan.FromMilliseconds(Percentile(_samplesMs.AsSpan(0, count), _options.TargetPercentile));
        var samples = _samples;
        var used = _maxInFlight;
        _samples = 0;
        _maxInFlight = 0;
        _windowStarted = now;

        var from = Limit;
        if (observed > _options.TargetLatency)
        {
            // At least one less, so that a small limit still moves (0.8 × 4 rounds back to 4... 3).
            Limit = Math.Max(_options.MinLimit, Math.Min(from - 1, (int)(from * _options.BackoffRatio)));
        }
        else if (used * 2 >= from)
        {
            Limit = Math.Min(_options.MaxLimit, from + _options.IncreaseStep);
        }

        return Limit == from ? null : new LimitChange(from, Limit, observed, samples);
    }

    /// <summary>The nearest-rank percentile; sorts <paramref name="values"/> in place.</summary>
    internal static double Percentile(Span<double> values, double percentile)
    {
        values.Sort();
        var rank = (int)Math.Ceiling(percentile / 100 * values.Length);
        return values[Math.Clamp(rank - 1, 0, values.Length - 1)];
    }
}
