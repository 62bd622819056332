using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>
/// How many movements a silo's coordinators start at once (<see cref="TransferOptions.MaxConcurrentTransfers"/>);
/// later ones wait in a first-in-first-out queue of <see cref="TransferOptions.MaxQueuedTransfers"/>,
/// and beyond that are refused with <see cref="LedgerOverloadedException"/> before anything is recorded.
/// </summary>
/// <remarks>
/// Orleans runs a grain's turns on the thread pool, whose threads take their own newest work first.
/// With hundreds of movements interleaved on a silo, that order lets some of them wait behind many
/// later ones, so the slowest take many times the mean. Admitting a few at a time, oldest first,
/// keeps that unfairness among a few, and the few keep the processors as busy: see docs/benchmarks.md.
/// </remarks>
public sealed class TransferAdmission : IDisposable
{
    private readonly ConcurrencyLimiter _limiter;

    public TransferAdmission(IOptions<TransferOptions> options, TransactorInstruments instruments)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(instruments);
        // Both limits are validated with the options (SiloBuilderExtensions.AddTransactor).
        var value = options.Value;
        Places = value.MaxConcurrentTransfers ?? TransferOptions.PlacesPerProcessor * Environment.ProcessorCount;
        _limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = Places,
            QueueLimit = value.MaxQueuedTransfers,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
        instruments.ObserveQueue(() => Queued);
    }

    /// <summary>How many movements the silo drives at once.</summary>
    public int Places { get; }

    /// <summary>How many movements wait for a place now.</summary>
    public long Queued => _limiter.GetStatistics()?.CurrentQueuedCount ?? 0;

    /// <summary>How many movements hold a place now.</summary>
    public long InFlight => Places - (_limiter.GetStatistics()?.CurrentAvailablePermits ?? Places);

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
