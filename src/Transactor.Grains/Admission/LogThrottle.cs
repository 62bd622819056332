namespace Transactor.Grains;

/// <summary>
/// Lets one log record through per <see cref="Interval"/> and counts the ones held back, so that a
/// log written on every overloaded request cannot itself become the overload.
/// </summary>
public sealed class LogThrottle(TimeSpan interval, TimeProvider time)
{
    /// <summary>The default gap between two records of one kind.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(5);

    private readonly Lock _lock = new();
    private long _lastLogged = long.MinValue;
    private long _suppressed;

    public TimeSpan Interval => interval;

    /// <summary>True when a record may be written now; <paramref name="suppressed"/> is how many were held back since the last one.</summary>
    public bool TryLog(out long suppressed)
    {
        var now = time.GetTimestamp();
        lock (_lock)
        {
            if (_lastLogged != long.MinValue && time.GetElapsedTime(_lastLogged, now) < interval)
            {
                _suppressed++;
                suppressed = 0;
                return false;
            }

            _lastLogged = now;
            suppressed = _suppressed;
            _suppressed = 0;
            return true;
        }
    }
}
