using System.Text.Json;
using Microsoft.Extensions.Options;
using Transactor.Api.Events;

namespace Transactor.Api.Runs;

/// <summary>
/// This API process's view of every run in the cluster, whichever process executes it: reads the run
/// registry (<see cref="IRunRegistryGrain"/>) every <see cref="PollEvery"/> (an answer carries the
/// runs only when something changed) and sends each changed run to the metrics stream's viewers as a
/// <c>run</c> event. The runs of the last answer go into every <c>metrics</c> snapshot.
/// </summary>
public sealed partial class RunBoard(
    IClusterClient client,
    MetricsFeed stream,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    TimeProvider time,
    ILogger<RunBoard> logger) : BackgroundService
{
    /// <summary>How often the registry is read: as often as executors report.</summary>
    public static readonly TimeSpan PollEvery = RunManager.ReportEvery;

    private static readonly TimeSpan PollTimeout = TimeSpan.FromSeconds(2);

    private volatile IReadOnlyList<RunView> _runs = [];
    private Guid _generation;
    private long _version;

    /// <summary>The runs of the registry's last answer, newest first (at most <see cref="LedgerRuns.MaxKept"/>).</summary>
    public IReadOnlyList<RunView> Views => _runs;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(PollEvery, time);
        do
        {
            try
            {
                await Poll(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // The registry may be moving to another silo: the last view stays until it answers.
                LogPollFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    internal async Task Poll(CancellationToken cancellation)
    {
        if (await client.Runs().List(_generation, _version).WaitAsync(PollTimeout, cancellation) is not { } list)
        {
            return;
        }

        var before = _runs.ToDictionary(r => r.Id, StringComparer.Ordinal);
        foreach (var run in list.Runs)
        {
            // Records compare by value: only a run whose view changed is sent.
            if (!before.TryGetValue(run.Id, out var old) || old != run)
            {
                stream.Publish(new StreamItem("run", JsonSerializer.Serialize(run, json.Value.SerializerOptions)));
            }
        }

        _runs = list.Runs;
        _generation = list.Generation;
        _version = list.Version;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reading the cluster's runs failed; the last view is kept")]
    private static partial void LogPollFailed(ILogger logger, Exception exception);
}
