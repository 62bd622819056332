using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>
/// Voids a pending transfer when its timeout has run out, through one Orleans reminder per pending
/// transfer with a timeout. The reminder is registered before the pending transfer is recorded, so
/// a recorded one always has it; it fires first a little after the timeout
/// (<see cref="FirstLookDelay"/>), then every <see cref="TransferOptions.RecoveryPeriod"/> until the
/// pending transfer has ended (posted, voided or expired), was never placed, or was rejected.
/// The expiry is an ordinary movement under the pending transfer's end id, so it happens at most
/// once and only if nothing else ended the transfer first.
/// </summary>
public sealed partial class PendingTimeoutGrain(TimeProvider time, IOptions<TransferOptions> options, ILogger<PendingTimeoutGrain> logger)
    : Grain, IPendingTimeoutGrain, IRemindable
{
    public const string ReminderName = "expire";

    /// <summary>
    /// How long after the timeout (counted from when the reminder is armed, a moment before the
    /// transfer is recorded) the reminder first looks: the deadline counts from the record's time.
    /// </summary>
    public static readonly TimeSpan FirstLookDelay = TimeSpan.FromSeconds(1);

    public async Task Arm(TimeSpan timeout)
    {
        // A retry of the same pending transfer must not push its first look later.
        if (await this.GetReminder(ReminderName) is null)
        {
            await this.RegisterOrUpdateReminder(ReminderName, timeout + FirstLookDelay, options.Value.RecoveryPeriod);
        }
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        var pendingId = this.GetPrimaryKeyString();
        var pending = await GrainFactory.GetTransferResult(pendingId);
        if (pending is { Status: TransferStatus.Pending })
        {
            return; // Still being placed: look again at the next tick.
        }

        if (pending is { Status: TransferStatus.Committed, Request: { Phase: TransferPhase.Pending, Timeout: { } timeout } })
        {
            if (time.GetUtcNow() < pending.CreatedAt + timeout)
            {
                return;
            }

            var ended = await GrainFactory.GetCoordinator().EndPending(pendingId, TransferPhase.Expire, null);
            if (ended.Status == TransferStatus.Pending)
            {
                return; // Recorded, and being finished by recovery: look again.
            }

            LogExpiry(logger, pendingId, ended.Status, ended.Reason);
        }

        if (await this.GetReminder(ReminderName) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }

        DeactivateOnIdle();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Timeout of pending transfer {PendingTransferId}: {Status} ({Reason})")]
    private static partial void LogExpiry(ILogger logger, string pendingTransferId, TransferStatus status, RejectionReason reason);
}
