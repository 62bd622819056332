using System.Text.Json;
using Microsoft.Extensions.Options;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Runs;
using Transactor.ServiceDefaults;

namespace Transactor.Api.Events;

/// <summary>
/// Once a second, makes the snapshot that <c>/events/metrics</c> sends: movements committed and
/// rejected per second across the cluster (from each silo's counters), p50 and p99 of the movements
/// that ended in that second, admission (in flight, queued against the limit, and this API's own
/// request limit), 429s per second, the silos with their status and activations, chaos mode where
/// it is on, the busiest accounts, and the runs.
/// </summary>
public sealed partial class LiveMetrics(
    TransferEventLog log,
    MetricsFeed stream,
    ApiMetrics api,
    RunBoard runs,
    LedgerAdmission admission,
    IClusterClient client,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    TimeProvider time,
    IConfiguration configuration,
    ILogger<LiveMetrics> logger) : BackgroundService
{
    /// <summary>The queue's share of its limit past which the ledger is under backpressure.</summary>
    public const double BackpressureQueueShare = 0.8;

    /// <summary>How many busiest accounts the snapshot lists.</summary>
    public const int BusiestCount = 8;

    private static readonly TimeSpan Period = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ClusterEvery = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ClusterTimeout = TimeSpan.FromSeconds(2);

    private readonly bool _orleansDashboard = DashboardAccess.Enabled(configuration);
    private readonly Dictionary<string, Counted> _previous = new(StringComparer.Ordinal);
    private IReadOnlyList<SiloInfo> _cluster = [];
    private long _clusterReadAt = long.MinValue;
    private long _previous429;
    private long _previousAt;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period, time);
        _previousAt = time.GetTimestamp();
        _previous429 = api.TooManyRequests;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                if (_clusterReadAt == long.MinValue || time.GetElapsedTime(_clusterReadAt) >= ClusterEvery)
                {
                    _clusterReadAt = time.GetTimestamp();
                    _cluster = await ReadCluster();
                }

                var snapshot = Sample();
                stream.Publish(new StreamItem("metrics", JsonSerializer.Serialize(snapshot, json.Value.SerializerOptions)));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSampleFailed(logger, ex);
            }
        }
    }

    internal LiveMetricsView Sample()
    {
        var now = time.GetTimestamp();
        var seconds = Math.Max(0.001, time.GetElapsedTime(_previousAt, now).TotalSeconds);
        _previousAt = now;
        var loads = log.SiloLoads();
        double committed = 0, rejected = 0, refused = 0;
        long inFlight = 0, queued = 0, queueLimit = 0, places = 0, dropped = 0, chaosFaults = 0;
        var chaosSilos = new List<string>();
        var chaosArmed = false;
        var perSilo = new Dictionary<string, double>(StringComparer.Ordinal);
        var known = _cluster.Where(s => s.Status != "Dead").Select(s => s.Address).ToHashSet(StringComparer.Ordinal);
        foreach (var (silo, figures) in loads)
        {
            if (_cluster.Count > 0 && !known.Contains(silo))
            {
                // It left: its last load is not the cluster's any more.
                log.ForgetSilo(silo);
                _previous.Remove(silo);
                continue;
            }

            if (figures.Load is not { } load)
            {
                continue;
            }

            // Each movement once: a silo's counters less the second ends of movements that another
            // driver had ended and sent first (TransferEventLog drops those). A silo's counts only grow;
            // one seen for the first time counts from its next load. The baseline never goes down, so a
            // batch that arrives late (its ends' second copies taken off after its successor's counts)
            // is made up by the next counts instead of being counted twice.
            var counts = new Counted(figures.Committed, figures.Rejected, load.Refused);
            var seen = _previous.TryGetValue(silo, out var before);
            var siloCommitted = seen ? Math.Max(0, counts.Committed - before.Committed) / seconds : 0;
            var siloRejected = seen ? Math.Max(0, counts.Rejected - before.Rejected) / seconds : 0;
            committed += siloCommitted;
            rejected += siloRejected;
            refused += seen ? Math.Max(0, counts.Refused - before.Refused) / seconds : 0;
            perSilo[silo] = siloCommitted + siloRejected;
            _previous[silo] = seen
                ? new Counted(Math.Max(before.Committed, counts.Committed), Math.Max(before.Rejected, counts.Rejected), Math.Max(before.Refused, counts.Refused))
                : counts;
            inFlight += load.InFlight;
            queued += load.Queued;
            queueLimit += load.QueueLimit;
            places += load.Places;
            dropped += figures.Dropped;
            if (load.ChaosFaults is { } faults)
            {
                chaosSilos.Add(_cluster.FirstOrDefault(s => s.Address == silo)?.Name ?? silo);
                chaosFaults += faults;
                chaosArmed |= load.ChaosArmed;
            }
        }

        var http429 = api.TooManyRequests;
        var http429PerSecond = Math.Max(0, http429 - _previous429) / seconds;
        _previous429 = http429;
        var latencies = log.TakeLatencies();
        double? Percentile(double p) => latencies.TotalCount == 0 ? null : Math.Round(latencies.GetValueAtPercentile(p) / 1000.0, 2);
        var total = perSilo.Values.Sum();
        var silos = _cluster.Select(s => s with
        {
            PerSecond = Math.Round(perSilo.GetValueOrDefault(s.Address), 1),
            Share = total > 0 ? Math.Round(perSilo.GetValueOrDefault(s.Address) / total, 3) : 0,
        }).ToArray();
        var backpressure = (queueLimit > 0 && queued > BackpressureQueueShare * queueLimit) || refused > 0 || http429PerSecond > 0;
        var (subscribers, largestBuffer) = log.Subscribers();
        chaosSilos.Sort(StringComparer.Ordinal);
        return new LiveMetricsView(
            time.GetUtcNow(),
            Math.Round(committed, 1),
            Math.Round(rejected, 1),
            Percentile(50),
            Percentile(99),
            latencies.TotalCount,
            inFlight,
            places,
            queued,
            queueLimit,
            admission.Limiter.Limit,
            admission.Limiter.Mode.ToString(),
            Math.Round(refused + http429PerSecond, 1),
            backpressure,
            silos,
            log.Busiest(BusiestCount, fade: 0.8),
            new EventsView(log.Received, dropped, subscribers, largestBuffer, stream.Count, log.Duplicates().Dropped),
            runs.Views,
            chaosSilos.Count == 0 ? null : new ChaosView(chaosSilos, chaosFaults, chaosArmed),
            _orleansDashboard);
    }

    private async Task<IReadOnlyList<SiloInfo>> ReadCluster()
    {
        try
        {
            var management = client.GetGrain<IManagementGrain>(0);
            var hosts = await management.GetDetailedHosts(onlyActive: false).WaitAsync(ClusterTimeout);
            var statistics = await management.GetSimpleGrainStatistics().WaitAsync(ClusterTimeout);
            var recent = time.GetUtcNow().UtcDateTime - TimeSpan.FromMinutes(1);
            return hosts
                .Where(h => h.Status != SiloStatus.Dead || h.IAmAliveTime > recent)
                .OrderBy(h => h.SiloName, StringComparer.Ordinal)
                .Select(h =>
                {
                    var mine = statistics.Where(s => s.SiloAddress.Equals(h.SiloAddress)).ToArray();
                    int Of(string type) => mine.Where(s => s.GrainType.Contains(type, StringComparison.Ordinal)).Sum(s => s.ActivationCount);
                    return new SiloInfo(h.SiloAddress.ToString(), h.SiloName, h.Status.ToString(), mine.Sum(s => s.ActivationCount),
                        Of("AccountGrain"), Of("RecoveryShardGrain"), 0, 0);
                })
                .ToArray();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Best effort: the last view stays until the cluster answers again.
            LogClusterFailed(logger, ex);
            return _cluster;
        }
    }

    /// <summary>What has been counted of one silo so far: movements committed and rejected (each once), and refusals.</summary>
    private readonly record struct Counted(long Committed, long Rejected, long Refused);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Making the live metrics snapshot failed")]
    private static partial void LogSampleFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reading the cluster's silos for the live metrics failed; the last view is kept")]
    private static partial void LogClusterFailed(ILogger logger, Exception exception);
}

/// <summary>The <c>metrics</c> event of <c>/events/metrics</c>: rates per second over the last second; latencies in milliseconds (null when nothing ended).</summary>
/// <param name="Places">The silos' admission limits now, summed: movements they drive at once.</param>
/// <param name="ApiLimit">This API's limit on money-moving requests at once, now (it moves in <c>Adaptive</c> mode).</param>
/// <param name="ApiLimitMode"><c>Fixed</c> or <c>Adaptive</c> (docs/overload.md).</param>
/// <param name="Refused">Movements refused per second: by a silo's full admission queue, and by this API's request limit (HTTP 429).</param>
/// <param name="Chaos">The silos in chaos mode, null when none is (docs/overload.md, "Chaos mode").</param>
/// <param name="OrleansDashboard">Whether this API serves the Orleans Dashboard at <c>/dashboard</c> (<c>Transactor:Dashboard:Enabled</c>); the page hides its link when not.</param>
public sealed record LiveMetricsView(
    DateTimeOffset Time,
    double Committed,
    double Rejected,
    double? P50Ms,
    double? P99Ms,
    long Sampled,
    long InFlight,
    long Places,
    long Queued,
    long QueueLimit,
    int ApiLimit,
    string ApiLimitMode,
    double Refused,
    bool Backpressure,
    IReadOnlyList<SiloInfo> Silos,
    IReadOnlyList<BusyAccountView> Busiest,
    EventsView Events,
    IReadOnlyList<RunView> Runs,
    ChaosView? Chaos,
    bool OrleansDashboard);

/// <summary>
/// Chaos mode where it is on: the silos (by name) in chaos mode, the faults they injected since they
/// started, and whether any of them may inject faults now (false while all wait for their armed file).
/// </summary>
public sealed record ChaosView(IReadOnlyList<string> Silos, long Faults, bool Armed);

/// <summary>A silo: its status, its activations (all, accounts, recovery shards), and movements it ended per second and as a share of all.</summary>
public sealed record SiloInfo(string Address, string Name, string Status, int Activations, int Accounts, int Shards, double PerSecond, double Share);

/// <summary>The event pipeline's own figures: movements received by this API, dropped by silos' buffers, and subscribers.</summary>
public sealed record EventsView(long Received, long DroppedBySilos, int TransferSubscribers, int LargestSubscriberBuffer, int MetricsSubscribers, long Duplicates);
