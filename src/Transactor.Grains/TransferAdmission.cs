using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>
/// How many movements a silo's coordinators start at once (<see cref="TransferOptions.MaxConcurrentTransfers"/>);
/// later ones wait in a first-in-first-out queue of <see cref="TransferOptions.MaxQueuedTransfers"/>,
/// and beyond that are refused with <see cref="LedgerOverloadedException"/> before anything is recorded.
/// With <see cref="TransferOptions.Admission"/> in <see cref="LimitMode.Adaptive"/> the number of
/// places starts there and follows the movements' latency (<see cref="AdaptiveConcurrencyLimit"/>).
/// </summary>
/// <remarks>
/// Orleans runs a grain's turns on the thread pool, whose threads take their own newest work first.
/// With hundreds of movements interleaved on a silo, that order lets some of them wait behind many
/// later ones, so the slowest take many times the mean. Admitting a few at a time, oldest first,
/// keeps that unfairness among a few, and the few keep the processors as busy: see docs/benchmarks.md.
/// </remarks>
public sealed class TransferAdmission : IDisposable
{
    private readonly AdaptiveConcurrencyLimiter _limiter;

    public TransferAdmission(IOptions<TransferOptions> options, TransactorInstruments instruments, TimeProvider time, ILogger<TransferAdmission> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(instruments);
        // The limits are validated with the options (SiloBuilderExtensions.AddTransactor).
        var value = options.Value;
        var places = value.MaxConcurrentTransfers ?? TransferOptions.PlacesPerProcessor * Environment.ProcessorCount;
        _limiter = new AdaptiveConcurrencyLimiter("silo", places, value.MaxQueuedTransfers, value.Admission, time, logger);
        instruments.ObserveQueue(() => Queued);
        instruments.ObserveAdmission("silo", () => Places, () => _limiter.Shed);
    }

    /// <summary>How many movements the silo drives at once now.</summary>
    public int Places => _limiter.Limit;

    /// <summary>Fixed, or following latency.</summary>
    public LimitMode Mode => _limiter.Mode;

    /// <summary>How many movements wait for a place now.</summary>
    public long Queued => _limiter.Queued;

    /// <summary>Movements refused because the queue was full, since the silo started.</summary>
    public long Shed => _limiter.Shed;

    /// <summary>How many movements hold a place now.</summary>
    public long InFlight => _limiter.InFlight;

    /// <summary>Waits for a turn to start a movement; dispose the result when the movement has ended.</summary>
    /// <exception cref="LedgerOverloadedException">The queue is full.</exception>
    public async ValueTask<RateLimitLease> Enter()
    {
        var lease = await _limiter.AcquireAsync();
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            throw new LedgerOverloadedException();
        }

        return lease;
    }

    public void Dispose() => _limiter.Dispose();
}
