using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Transactor.Grains;

/// <summary>All of Transactor's metrics, in the meter <see cref="MeterName"/>.</summary>
public sealed class TransactorInstruments : IDisposable
{
    public const string MeterName = "Transactor";

    private readonly Meter _meter;
    private readonly Counter<long> _committed;
    private readonly Counter<long> _rejected;
    private readonly UpDownCounter<long> _inFlight;
    private readonly Histogram<double> _durationMs;
    private readonly Counter<long> _recoveries;
    private readonly Counter<long> _chaosFaults;

    public TransactorInstruments(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(MeterName);
        _committed = _meter.CreateCounter<long>("transactor.transfers.committed", "{transfer}", "Movements committed.");
        _rejected = _meter.CreateCounter<long>("transactor.transfers.rejected", "{transfer}", "Movements rejected, by reason.");
        _inFlight = _meter.CreateUpDownCounter<long>("transactor.transfers.in_flight", "{transfer}", "Movements being driven by a coordinator.");
        _durationMs = _meter.CreateHistogram<double>("transactor.transfer.duration", "ms", "Time a coordinator takes to drive a movement to its end.");
        _recoveries = _meter.CreateCounter<long>("transactor.transfers.recoveries", "{transfer}", "Interrupted movements picked up by recovery.");
        _chaosFaults = _meter.CreateCounter<long>("transactor.chaos.faults", "{fault}", "Faults injected by chaos mode, by kind.");
    }

    public void Started() => _inFlight.Add(1);

    public void Ended(TransferStatus status, RejectionReason reason, TimeSpan elapsed)
    {
        _inFlight.Add(-1);
        _durationMs.Record(elapsed.TotalMilliseconds);
        if (status == TransferStatus.Committed)
        {
            _committed.Add(1);
        }
        else if (status == TransferStatus.Rejected)
        {
            _rejected.Add(1, new TagList { { "reason", reason.ToCode() } });
        }
    }

    public void Rejected(RejectionReason reason) => _rejected.Add(1, new TagList { { "reason", reason.ToCode() } });

    public void Recovered() => _recoveries.Add(1);

    public void ChaosFault(ChaosFaultKind kind) => _chaosFaults.Add(1, new TagList { { "kind", kind.ToString().ToLowerInvariant() } });

    /// <summary>Reports how many movements wait for the silo to admit them (<see cref="TransferAdmission"/>).</summary>
    public void ObserveQueue(Func<long> queued) =>
        _meter.CreateObservableGauge("transactor.transfers.queued", queued, "{transfer}", "Movements waiting for the silo to admit them.");

    /// <summary>
    /// Reports a concurrency limiter's current limit and how many requests it shed, tagged with
    /// <paramref name="limiter"/> (<c>silo</c> for <see cref="TransferAdmission"/>, <c>api</c> for the API's).
    /// </summary>
    public void ObserveAdmission(string limiter, Func<int> limit, Func<long> shed)
    {
        var tags = new KeyValuePair<string, object?>[] { new("limiter", limiter) };
        _meter.CreateObservableGauge("transactor.admission.limit", () => new Measurement<int>(limit(), tags), "{request}", "How many requests or movements the limiter admits at once now.");
        _meter.CreateObservableCounter("transactor.admission.shed", () => new Measurement<long>(shed(), tags), "{request}", "Requests or movements refused because the limiter's queue was full, or because they waited longer than its bound.");
    }

    public void Dispose() => _meter.Dispose();
}
