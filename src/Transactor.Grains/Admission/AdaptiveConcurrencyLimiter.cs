using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;

namespace Transactor.Grains;

/// <summary>
/// A concurrency limiter whose limit can move while it runs (<see cref="ConcurrencyLimiter"/>'s
/// cannot): at most <see cref="Limit"/> leases at once, then a first-in-first-out queue of at most
/// <c>queueLimit</c> waiters, and beyond that a refusal at once (shed, not queued). With
/// <see cref="ConcurrencyLimitOptions.QueueTimeout"/> a waiter is also refused once it has waited
/// longer than the queue's current bound (<see cref="QueueTimedOut"/>): the bound is short once the
/// queue stands (<see cref="ConcurrencyLimitOptions.StandingQueueTimeout"/>), so under overload
/// admitted work does not wait behind a queue that never drains. In
/// <see cref="LimitMode.Adaptive"/> every ended lease is a latency sample for
/// <see cref="AdaptiveConcurrencyLimit"/>; in <see cref="LimitMode.Fixed"/> the limit never moves.
/// Limit changes and shedding are logged at information level, each at most once per
/// <see cref="LogThrottle.DefaultInterval"/>.
/// </summary>
public sealed partial class AdaptiveConcurrencyLimiter : RateLimiter
{
    /// <summary>The reason (<see cref="MetadataName.ReasonPhrase"/>) on a lease refused because it waited longer than the queue's bound.</summary>
    public const string QueueTimeoutReason = "queue_timeout";

    /// <summary>The reason on a lease refused at once because the queue was full.</summary>
    public const string QueueFullReason = "queue_full";

    private static readonly RateLimitLease Refused = new RefusedLease(QueueFullReason);
    private static readonly RateLimitLease QueueTimedOut = new RefusedLease(QueueTimeoutReason);

    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _queue = new();
    private readonly string _name;
    private readonly int _queueLimit;
    private readonly AdaptiveConcurrencyLimit? _adaptive;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LogThrottle _changeLog;
    private readonly LogThrottle _shedLog;
    private readonly LogThrottle _timeoutLog;
    private readonly TimeSpan? _queueTimeout;
    private readonly TimeSpan? _standingQueueTimeout;
    private readonly TimeSpan _standingQueueInterval;
    private readonly ITimer? _sweep;
    private long _queueLastEmpty;
    private long _timedOut;
    private long _timedOutSinceLog;
    private int _limit;
    private int _inFlight;
    private int _queueCount;
    private long _admitted;
    private long _shed;
    private long _shedSinceLog;
    private bool _disposed;

    public AdaptiveConcurrencyLimiter(string name, int initialLimit, int queueLimit, ConcurrencyLimitOptions options, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentOutOfRangeException.ThrowIfLessThan(initialLimit, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(queueLimit);
        _name = name;
        _queueLimit = queueLimit;
        _time = time;
        _logger = logger;
        _changeLog = new LogThrottle(LogThrottle.DefaultInterval, time);
        _shedLog = new LogThrottle(LogThrottle.DefaultInterval, time);
        _timeoutLog = new LogThrottle(LogThrottle.DefaultInterval, time);
        _queueTimeout = options.QueueTimeout;
        _standingQueueTimeout = options.StandingQueueTimeout ?? options.QueueTimeout;
        _standingQueueInterval = options.StandingQueueInterval;
        _queueLastEmpty = time.GetTimestamp();
        Mode = options.Mode;
        if (options.Mode == LimitMode.Adaptive)
        {
            _adaptive = new AdaptiveConcurrencyLimit(initialLimit, options, time);
            _limit = _adaptive.Limit;
        }
        else
        {
            _limit = initialLimit;
        }

        if (_queueTimeout is { } timeout && _standingQueueTimeout is { } standing)
        {
            // Waiters are expired as requests come and go; the sweep bounds the wait when nothing
            // does (every place held by slow work): at most half the shorter bound late.
            var period = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(5).Ticks, Math.Min(timeout.Ticks, standing.Ticks) / 2));
            _sweep = time.CreateTimer(static state => ((AdaptiveConcurrencyLimiter)state!).Sweep(), this, period, period);
        }
    }

    public LimitMode Mode { get; }

    /// <summary>How many leases may be held at once now.</summary>
    public int Limit => Volatile.Read(ref _limit);

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Queued
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>
    /// True while a request would be refused at once: every place taken and the queue full. A
    /// cheap, lock-free look (it may be a moment stale) for shedding before any other work.
    /// </summary>
    public bool IsSaturated => Volatile.Read(ref _inFlight) >= Volatile.Read(ref _limit) && Volatile.Read(ref _queueCount) >= _queueLimit;

    /// <summary>Requests refused because the queue was full or they waited longer than its bound, since start.</summary>
    public long Shed => Interlocked.Read(ref _shed);

    /// <summary>Of <see cref="Shed"/>, those refused because they waited longer than the queue's bound.</summary>
    public long TimedOut => Interlocked.Read(ref _timedOut);

    /// <summary>Never idle: the limiter is shared for the process's life, and a partitioned limiter disposes idle ones.</summary>
    public override TimeSpan? IdleDuration => null;

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            return new RateLimiterStatistics
            {
                CurrentAvailablePermits = Math.Max(0, _limit - _inFlight),
                CurrentQueuedCount = _queue.Count,
                TotalFailedLeases = _shed,
                TotalSuccessfulLeases = _admitted,
            };
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        CheckPermitCount(permitCount);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_queue.Count == 0 && _inFlight < _limit)
            {
                return GrantLocked();
            }
        }

        return Refuse();
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        CheckPermitCount(permitCount);
        Waiter? waiter = null;
        RateLimitLease? granted = null;
        List<Waiter>? expired;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = _time.GetTimestamp();
            expired = ExpireLocked(now);
            if (_queue.Count == 0)
            {
                _queueLastEmpty = now;
            }

            // Oldest first: none may pass the queue while it has waiters.
            if (_queue.Count == 0 && _inFlight < _limit)
            {
                granted = GrantLocked();
            }
            else if (_queue.Count < _queueLimit)
            {
                waiter = new Waiter(this, now);
                waiter.Node = _queue.AddLast(waiter);
                Volatile.Write(ref _queueCount, _queue.Count);
            }
        }

        TimeOut(expired);
        if (granted is not null)
        {
            return ValueTask.FromResult(granted);
        }

        if (waiter is null)
        {
            return ValueTask.FromResult(Refuse());
        }

        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.Register(static state =>
            {
                var (w, token) = ((Waiter, CancellationToken))state!;
                w.Limiter.Cancel(w, token);
            }, (waiter, cancellationToken));
        }

        return new ValueTask<RateLimitLease>(waiter.Completion.Task);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing)
        {
            return;
        }

        List<Waiter> waiting;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _sweep?.Dispose();
            waiting = [.. _queue];
            _queue.Clear();
        }

        foreach (var waiter in waiting)
        {
            waiter.Registration.Dispose();
            waiter.Completion.TrySetResult(Refused);
        }
    }

    private static void CheckPermitCount(int permitCount)
    {
        if (permitCount != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(permitCount), permitCount, "One permit per request, always.");
        }
    }

    private Lease GrantLocked()
    {
        _inFlight++;
        _admitted++;
        return new Lease(this, _time.GetTimestamp(), _inFlight);
    }

    /// <summary>Counts (and logs, throttled) a request its owner shed on seeing <see cref="IsSaturated"/>, without asking for a lease.</summary>
    public void CountShedEarly() => Refuse();

    private RateLimitLease Refuse()
    {
        Interlocked.Increment(ref _shed);
        var shed = Interlocked.Increment(ref _shedSinceLog);
        if (_shedLog.TryLog(out _))
        {
            Interlocked.Add(ref _shedSinceLog, -shed);
            LogShed(_logger, _name, shed, (long)_shedLog.Interval.TotalSeconds, Limit, Queued);
        }

        return Refused;
    }

    /// <summary>
    /// Takes out of the queue's head every waiter that waited longer than the queue's bound now:
    /// the short one once the queue has not been empty for the standing interval, else the long
    /// one. First in, first out, so the oldest is at the head and the first young one ends the scan.
    /// </summary>
    private List<Waiter>? ExpireLocked(long now)
    {
        if (_queueTimeout is not { } timeout || _queue.Count == 0)
        {
            return null;
        }

        var bound = _time.GetElapsedTime(_queueLastEmpty, now) >= _standingQueueInterval ? _standingQueueTimeout!.Value : timeout;
        List<Waiter>? expired = null;
        while (_queue.First is { } first && _time.GetElapsedTime(first.Value.EnqueuedAt, now) > bound)
        {
            _queue.RemoveFirst();
            (expired ??= []).Add(first.Value);
        }

        if (_queue.Count == 0)
        {
            _queueLastEmpty = now;
        }

        Volatile.Write(ref _queueCount, _queue.Count);
        return expired;
    }

    /// <summary>Refuses the waiters <see cref="ExpireLocked"/> took out, outside the lock.</summary>
    private void TimeOut(List<Waiter>? expired)
    {
        if (expired is null)
        {
            return;
        }

        foreach (var waiter in expired)
        {
            waiter.Registration.Dispose();
            waiter.Completion.TrySetResult(QueueTimedOut);
        }

        Interlocked.Add(ref _shed, expired.Count);
        Interlocked.Add(ref _timedOut, expired.Count);
        var count = Interlocked.Add(ref _timedOutSinceLog, expired.Count);
        if (_timeoutLog.TryLog(out _))
        {
            Interlocked.Add(ref _timedOutSinceLog, -count);
            LogTimedOut(_logger, _name, count, (long)_timeoutLog.Interval.TotalSeconds, Limit, Queued);
        }
    }

    /// <summary>The timer's pass: expires waiters even while no request comes or goes.</summary>
    private void Sweep()
    {
        List<Waiter>? expired;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            expired = ExpireLocked(_time.GetTimestamp());
        }

        TimeOut(expired);
    }

    private void Cancel(Waiter waiter, CancellationToken token)
    {
        lock (_lock)
        {
            if (waiter.Node?.List is null)
            {
                return;
            }

            _queue.Remove(waiter.Node);
            Volatile.Write(ref _queueCount, _queue.Count);
        }

        waiter.Completion.TrySetCanceled(token);
    }

    private void Release(long startedAt, int inFlightAtStart)
    {
        LimitChange? change = null;
        List<(Waiter Waiter, Lease Lease)>? granted = null;
        List<Waiter>? expired;
        int queued;
        lock (_lock)
        {
            _inFlight--;
            if (_adaptive is not null)
            {
                change = _adaptive.OnSample(_time.GetElapsedTime(startedAt), inFlightAtStart);
                Volatile.Write(ref _limit, _adaptive.Limit);
            }

            var now = _time.GetTimestamp();
            expired = ExpireLocked(now);
            while (_queue.First is { } first && _inFlight < _limit)
            {
                _queue.RemoveFirst();
                (granted ??= []).Add((first.Value, GrantLocked()));
            }

            queued = _queue.Count;
            Volatile.Write(ref _queueCount, queued);
            if (queued == 0)
            {
                _queueLastEmpty = now;
            }
        }

        TimeOut(expired);

        if (granted is not null)
        {
            foreach (var (waiter, lease) in granted)
            {
                waiter.Registration.Dispose();
                if (!waiter.Completion.TrySetResult(lease))
                {
                    lease.Dispose();
                }
            }
        }

        if (change is { } c && _changeLog.TryLog(out var unlogged))
        {
            LogLimitChanged(_logger, _name, c.From, c.To, (long)c.ObservedLatency.TotalMilliseconds, c.Samples, InFlight, queued, unlogged);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Admission ({Limiter}): limit {FromLimit} -> {ToLimit} (window latency {LatencyMs} ms over {Samples} samples; {InFlight} in flight, {Queued} queued; {Unlogged} earlier changes not logged)")]
    private static partial void LogLimitChanged(ILogger logger, string limiter, int fromLimit, int toLimit, long latencyMs, int samples, int inFlight, int queued, long unlogged);

    [LoggerMessage(Level = LogLevel.Information, Message = "Admission ({Limiter}): shed {Shed} requests in about {Seconds} s with a full queue (limit {Limit}, {Queued} queued)")]
    private static partial void LogShed(ILogger logger, string limiter, long shed, long seconds, int limit, long queued);

    [LoggerMessage(Level = LogLevel.Information, Message = "Admission ({Limiter}): refused {TimedOut} requests in about {Seconds} s that waited longer than the queue's bound (limit {Limit}, {Queued} queued)")]
    private static partial void LogTimedOut(ILogger logger, string limiter, long timedOut, long seconds, int limit, long queued);

    private sealed class Waiter(AdaptiveConcurrencyLimiter limiter, long enqueuedAt)
    {
        public AdaptiveConcurrencyLimiter Limiter => limiter;

        /// <summary>When it joined the queue (<see cref="TimeProvider.GetTimestamp"/>).</summary>
        public long EnqueuedAt => enqueuedAt;

        public TaskCompletionSource<RateLimitLease> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }

        public CancellationTokenRegistration Registration { get; set; }
    }

    private sealed class Lease(AdaptiveConcurrencyLimiter limiter, long startedAt, int inFlightAtStart) : RateLimitLease
    {
        private int _released;

        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                limiter.Release(startedAt, inFlightAtStart);
            }
        }
    }

    /// <summary>A refusal, with its reason as <see cref="MetadataName.ReasonPhrase"/>.</summary>
    private sealed class RefusedLease(string reason) : RateLimitLease
    {
        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [MetadataName.ReasonPhrase.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (metadataName == MetadataName.ReasonPhrase.Name)
            {
                metadata = reason;
                return true;
            }

            metadata = null;
            return false;
        }
    }
}
