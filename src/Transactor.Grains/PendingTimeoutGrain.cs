using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>
/// Voids a pending transfer when its timeout has run out, through one Orleans reminder per pending
/// transfer with a timeout. Every driver of the hold arms it once the hold is decided committed
/// and before the movement completes (<see cref="Arm"/>, from the recorded request), so a hold
/// that is on the accounts always has it, and a hold that was refused (429, a rejection) never had
/// one. It first looks a little after the deadline (<see cref="FirstLookDelay"/>), then every
/// <see cref="TransferOptions.RecoveryPeriod"/> until the pending transfer has ended (posted,
/// voided or expired). A post or void unregisters it (<see cref="Disarm"/>, best effort).
/// The expiry is an ordinary movement under the pending transfer's end id, so it happens at most
/// once and only if nothing else ended the transfer first.
/// </summary>
public sealed partial class PendingTimeoutGrain(TimeProvider time, IOptions<TransferOptions> options, ILogger<PendingTimeoutGrain> logger)
    : Grain, IPendingTimeoutGrain, IRemindable
{
    public const string ReminderName = "expire";

    /// <summary>How long after the deadline the reminder first looks.</summary>
    public static readonly TimeSpan FirstLookDelay = TimeSpan.FromSeconds(1);

    public async Task Arm(DateTimeOffset deadline)
    {
        // Always from the recorded deadline: every driver of the hold arms the same one, so arming
        // again (recovery, a retry) moves nothing, and no earlier request under the key can leave
        // a later one behind.
        var due = deadline - time.GetUtcNow();
        await this.RegisterOrUpdateReminder(ReminderName, (due > TimeSpan.Zero ? due : TimeSpan.Zero) + FirstLookDelay, options.Value.RecoveryPeriod);
    }

    public async Task Disarm()
    {
        await Unregister();
        DeactivateOnIdle();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        var pendingId = this.GetPrimaryKeyString();
        var pending = await GrainFactory.GetTransferResult(pendingId);
        if (pending is { Status: TransferStatus.Pending })
        {
            return; // Listed: still being placed (it is armed before it completes). Look again at the next tick.
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

        // Ended, or never a committed hold (a reminder left by an earlier version): nothing to expire.
        await Unregister();
        DeactivateOnIdle();
    }

    private async Task Unregister()
    {
        if (await this.GetReminder(ReminderName) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Timeout of pending transfer {PendingTransferId}: {Status} ({Reason})")]
    private static partial void LogExpiry(ILogger logger, string pendingTransferId, TransferStatus status, RejectionReason reason);
}
