using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>How long a silo's process may take to stop (configuration section <c>Transactor:Hosting</c>).</summary>
public sealed class StopOptions
{
    public const string SectionName = "Transactor:Hosting";

    /// <summary>
    /// The host's shutdown timeout: after it, Orleans stops without waiting for grains and storage.
    /// A process still running <see cref="ExitAfter"/> later exits.
    /// </summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long after <see cref="StopTimeout"/> a process that has not stopped exits anyway.</summary>
    public TimeSpan ExitAfter { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Bounds a silo's stop. Orleans' own stop waits on its membership table: with the database down,
/// marking the silo Stopping and then Dead is retried for a minute each whatever the host's shutdown
/// timeout (measured: 122 s for a graceful stop of a silo whose PostgreSQL was stopped). Past
/// <see cref="StopOptions.StopTimeout"/> plus <see cref="StopOptions.ExitAfter"/>, the process exits
/// with code <see cref="ExitCode"/>: to the cluster that is a crash, which it survives (the silo is
/// declared dead; recovery finishes the movements it drove), while a stop that outlasts an
/// orchestrator's grace period would end in SIGKILL anyway.
/// </summary>
internal sealed partial class StopDeadline(IHostApplicationLifetime lifetime, IOptions<StopOptions> options, ILogger<StopDeadline> logger) : IHostedService, IDisposable
{
    public const int ExitCode = 3;

    private CancellationTokenRegistration _stopping;
    private Timer? _deadline;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(() =>
        {
            var bound = options.Value.StopTimeout + options.Value.ExitAfter;
            _deadline = new Timer(_ => Exit(bound), null, bound, Timeout.InfiniteTimeSpan);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _stopping.Dispose();
        _deadline?.Dispose();
    }

    private void Exit(TimeSpan bound)
    {
        LogStopTooLong(logger, bound);
        Environment.Exit(ExitCode);
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "The silo did not stop within {Bound} (its database or cluster does not answer); the process exits now, as a crash would: the cluster declares it dead and recovery finishes its movements")]
    private static partial void LogStopTooLong(ILogger logger, TimeSpan bound);
}
