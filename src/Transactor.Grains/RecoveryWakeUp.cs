using Microsoft.Extensions.Logging;

namespace Transactor.Grains;

/// <summary>
/// Activates every recovery shard once this silo is active. A shard that activates hands what it
/// lists to coordinators (<see cref="RecoveryShardGrain.ActivationSweepDelay"/>); without a call,
/// the shards of a cluster that was killed whole would wait for their reminders, which the reminder
/// service fires up to a <see cref="TransferOptions.RecoveryPeriod"/> after it starts, and the
/// movements in flight at the crash would stay pending that long (issue #23: 2.5 minutes).
/// </summary>
internal sealed partial class RecoveryWakeUp(IGrainFactory grains, ILogger<RecoveryWakeUp> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(RecoveryWakeUp), ServiceLifecycleStage.Active, _ =>
        {
            // In the background: a shard whose storage is down must not hold this silo's start.
            WakeAll().Ignore();
            return Task.CompletedTask;
        });

    private async Task WakeAll()
    {
        try
        {
            await Task.WhenAll(Enumerable.Range(0, RecoveryShards.Count).Select(shard =>
                grains.GetGrain<IRecoveryShardGrain>(shard).List(0)));
        }
        catch (Exception ex)
        {
            // The reminders still bring every shard back; this only makes it sooner.
            LogWakeUpFailed(logger, ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Activating the recovery shards at start failed; their reminders will bring them back")]
    private static partial void LogWakeUpFailed(ILogger logger, Exception exception);
}
