using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Transactor.Api.Events;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Runs;
using Transactor.Grains;

namespace Transactor.Tests.Events;

/// <summary>The metrics stream's figures from the silos' batches, without a cluster.</summary>
public sealed class LiveMetricsTests
{
    private const string One = "S10.0.0.1:11111:1";
    private const string Two = "S10.0.0.2:11111:1";

    /// <summary>
    /// Two drivers of one movement (a takeover racing the first driver, or recovery) may both complete
    /// it, each on its own silo: each silo counts it and sends its end. The committed rate counts it once.
    /// </summary>
    [Fact]
    public async Task A_movement_completed_by_two_drivers_counts_once_in_the_committed_and_rejected_rates()
    {
        // Both silos known, counting from here.
        var (clock, log, metrics, silos) = await TwoSilos();
        metrics.Sample();

        // m-1 ended on silo one only; m-2 was completed by a driver on each silo.
        await silos.Send(One, ("m-1", TransferStatus.Committed), ("m-2", TransferStatus.Committed));
        await silos.Send(Two, ("m-2", TransferStatus.Committed));
        var first = Next(metrics, clock);
        Assert.Equal(2, first.Committed);
        Assert.Equal(0, first.Rejected);
        Assert.Equal(1, first.Events.Duplicates);

        // The other way round, and a rejection: silo two ends m-3 and m-4 first, silo one ends them again later.
        await silos.Send(Two, ("m-3", TransferStatus.Committed), ("m-4", TransferStatus.Rejected));
        await silos.Send(One, ("m-3", TransferStatus.Committed), ("m-5", TransferStatus.Committed));
        await silos.Send(One, ("m-4", TransferStatus.Rejected));
        var second = Next(metrics, clock);
        Assert.Equal(2, second.Committed);
        Assert.Equal(1, second.Rejected);
        Assert.Equal(3, second.Events.Duplicates);

        // A second driver's end arriving in a later second than the first one's is not counted either.
        await silos.Send(One, ("m-6", TransferStatus.Committed));
        Assert.Equal(1, Next(metrics, clock).Committed);
        await silos.Send(Two, ("m-6", TransferStatus.Committed));
        Assert.Equal(0, Next(metrics, clock).Committed);

        // A batch that arrives after a later one of its silo (one-way calls are not ordered) counts nothing twice.
        var late = silos.Make(Two, ("m-7", TransferStatus.Committed));
        await silos.Send(Two, ("m-8", TransferStatus.Committed), ("m-1", TransferStatus.Committed));
        await log.OnEvents(late);
        await silos.Send(One, ("m-9", TransferStatus.Committed));
        Assert.Equal(3, Next(metrics, clock).Committed);
        Assert.Equal(0, Next(metrics, clock).Committed);
    }

    /// <summary>
    /// Chaos mode is loud on the page: a silo whose load says it injects faults is named in the
    /// snapshot with the faults it injected; with no such silo the snapshot has no chaos at all.
    /// The API's own request limit is there too.
    /// </summary>
    [Fact]
    public async Task Silos_in_chaos_mode_are_named_with_their_faults_and_the_api_limit_is_shown()
    {
        var (clock, _, metrics, silos) = await TwoSilos();
        var calm = Next(metrics, clock);
        Assert.Null(calm.Chaos);
        Assert.Equal(new LedgerLimitOptions().MaxConcurrentRequests, calm.ApiLimit);
        Assert.Equal("Fixed", calm.ApiLimitMode);

        silos.ChaosFaults[Two] = 17;
        await silos.Send(Two, ("m-1", TransferStatus.Committed));
        var chaos = Next(metrics, clock).Chaos;
        Assert.NotNull(chaos);
        Assert.Equal([Two], chaos.Silos);
        Assert.Equal(17, chaos.Faults);

        silos.ChaosFaults[One] = 3;
        silos.ChaosFaults[Two] = 20;
        await silos.Send(One);
        await silos.Send(Two);
        chaos = Next(metrics, clock).Chaos;
        Assert.Equal([One, Two], chaos!.Silos);
        Assert.Equal(23, chaos.Faults);
    }

    /// <summary>An API's event log and metrics on a fake clock, with silos <see cref="One"/> and <see cref="Two"/> known to it.</summary>
    private static async Task<(FakeTimeProvider Clock, TransferEventLog Log, LiveMetrics Metrics, Silos Silos)> TwoSilos()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var log = new TransferEventLog(Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions()), clock);
        var silos = new Silos(log, clock);
        await silos.Send(One);
        await silos.Send(Two);
        return (clock, log, Metrics(log, clock), silos);
    }

    private static LiveMetricsView Next(LiveMetrics metrics, FakeTimeProvider clock)
    {
        clock.Advance(TimeSpan.FromSeconds(1));
        return metrics.Sample();
    }

    private static LiveMetrics Metrics(TransferEventLog log, TimeProvider clock)
    {
        var json = Options.Create(new Microsoft.AspNetCore.Http.Json.JsonOptions());
        var feed = new MetricsFeed();
        // Sample reads neither the cluster nor the registry: the cluster view is read by the service's loop, the runs by the board's.
        var board = new RunBoard(null!, feed, json, clock, NullLogger<RunBoard>.Instance);
        return new LiveMetrics(log, feed, new ApiMetrics(), board, Admission(clock), null!, json, clock, new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build(), NullLogger<LiveMetrics>.Instance);
    }

    /// <summary>The API's request limiter with its default options (fixed, 256 at once).</summary>
    internal static LedgerAdmission Admission(TimeProvider clock) =>
        new(new LedgerLimitOptions(), clock, new TransactorInstruments(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>()), NullLogger<LedgerAdmission>.Instance);

    /// <summary>Silos as the publisher makes their batches: numbered movements, and a load that counts every end sent so far, second ends too.</summary>
    private sealed class Silos(TransferEventLog log, FakeTimeProvider clock)
    {
        private readonly Dictionary<string, (long Sent, long Committed, long Rejected)> _silos = [];
        private DateTimeOffset _at = clock.GetUtcNow();

        /// <summary>Faults injected so far by silos in chaos mode; a silo not here is not in chaos mode.</summary>
        public Dictionary<string, long> ChaosFaults { get; } = [];

        public Task Send(string silo, params (string Id, TransferStatus Status)[] ends) => log.OnEvents(Make(silo, ends));

        public LedgerEventBatch Make(string silo, params (string Id, TransferStatus Status)[] ends)
        {
            var (sent, committed, rejected) = _silos.GetValueOrDefault(silo);
            committed += ends.Count(e => e.Status == TransferStatus.Committed);
            rejected += ends.Count(e => e.Status == TransferStatus.Rejected);
            _silos[silo] = (sent + ends.Length, committed, rejected);
            // Each batch made later than the one before, as a silo stamps its loads (the clock of the test moves by whole seconds).
            _at = _at.AddMilliseconds(1);
            return new LedgerEventBatch(
                silo,
                ends.Select(e => new MovementEvent(e.Id, TransferKind.Transfer, "a", "b", 100, "USD", e.Status, e.Status == TransferStatus.Rejected ? "insufficient_funds" : null, 1.5, null, _at, null, 0, null, 0)).ToArray(),
                new SiloLoad(committed, rejected, 0, 0, 0, 1, 1, _at, ChaosFaults.TryGetValue(silo, out var faults) ? faults : null),
                0,
                sent + 1);
        }
    }
}
