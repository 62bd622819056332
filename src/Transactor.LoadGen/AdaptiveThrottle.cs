using System.Diagnostics;

namespace Transactor.LoadGen;

/// <summary>
/// Client-side adaptive throttling (Google SRE book, "Handling Overload"): a client that sees the
/// ledger shed its requests refuses some of its own requests locally, with probability
/// <c>max(0, (requests - k·accepts) / (requests + 1))</c> over the last <see cref="Window"/>. A
/// request refused here costs the ledger nothing, where one it sheds still costs it a connection,
/// authentication, a limiter and an answer: under a 5× overload those costs are what takes the
/// processors from the requests it admits (docs/overload.md). With <c>k</c> above 1 the client still
/// sends a little more than is accepted, so it finds out when the ledger can take more. It refuses
/// nothing while the window holds no shed answer (429 or 503): at the start of a run, and whenever
/// the ledger keeps up, answers still on their way are not taken for refusals.
/// </summary>
/// <remarks>Thread-safe; the counts live in <see cref="Buckets"/> buckets of fixed size, so memory stays fixed.</remarks>
public sealed class AdaptiveThrottle(double k, Random random)
{
    /// <summary>How far back requests and accepts are counted.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(2);

    private const int Buckets = 20;
    private static readonly long BucketTicks = Window.Ticks / Buckets * Stopwatch.Frequency / TimeSpan.TicksPerSecond;

    private readonly Lock _lock = new();
    private readonly long[] _requests = new long[Buckets];
    private readonly long[] _accepts = new long[Buckets];
    private readonly long[] _shed = new long[Buckets];
    private readonly long[] _bucketOf = new long[Buckets];

    /// <summary>Counts a request about to be made, and says whether to refuse it locally instead.</summary>
    public bool ShouldRefuse(long now)
    {
        lock (_lock)
        {
            var slot = Slot(now);
            _requests[slot]++;
            long requests = 0, accepts = 0, shed = 0;
            var current = now / BucketTicks;
            for (var i = 0; i < Buckets; i++)
            {
                if (current - _bucketOf[i] < Buckets)
                {
                    requests += _requests[i];
                    accepts += _accepts[i];
                    shed += _shed[i];
                }
            }

            if (shed == 0)
            {
                return false;
            }

            var refuse = Math.Max(0, (requests - k * accepts) / (requests + 1));
            return refuse > 0 && random.NextDouble() < refuse;
        }
    }

    /// <summary>The ledger accepted a request (answered it with anything but shedding).</summary>
    public void Accepted(long now)
    {
        lock (_lock)
        {
            _accepts[Slot(now)]++;
        }
    }

    /// <summary>The ledger shed a request (429 or 503).</summary>
    public void Shed(long now)
    {
        lock (_lock)
        {
            _shed[Slot(now)]++;
        }
    }

    private int Slot(long now)
    {
        var bucket = now / BucketTicks;
        var slot = (int)(bucket % Buckets);
        if (_bucketOf[slot] != bucket)
        {
            _bucketOf[slot] = bucket;
            _requests[slot] = 0;
            _accepts[slot] = 0;
            _shed[slot] = 0;
        }

        return slot;
    }
}

