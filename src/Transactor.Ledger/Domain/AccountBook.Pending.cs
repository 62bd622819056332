namespace Transactor.Domain;

/// <summary>
/// Pending (two-phase) transfers on one account. A pending transfer is prepared and decided like
/// any movement (<see cref="HoldStep.Hold"/>); applying it does not move the money but keeps it on
/// hold on each side: the debit's amount leaves available for pending debit, the credit's waits in
/// pending credit. Its post or void is a movement of its own, through the same protocol, whose
/// entries claim the hold when prepared and end it when applied. A post or void checks no funds,
/// lock or currency: the hold was checked when it was placed, and its money is set aside.
/// </summary>
public sealed partial class AccountBook
{
    /// <summary>The most holds of pending transfers one account keeps at once (its row carries them all).</summary>
    public const int MaxHolds = 10_000;

    /// <summary>The hold of pending transfer <paramref name="pendingTransferId"/> on this account, or null.</summary>
    public HoldEntry? HoldOf(string pendingTransferId) => State.Holds?.GetValueOrDefault(pendingTransferId);

    private PrepareResult PrepareEndOfHold(PrepareRequest request, out bool changed)
    {
        changed = false;
        if (request.PendingTransferId is not { } pendingId || HoldOf(pendingId) is not { } hold || hold.Side != request.Side)
        {
            return Rejected(RejectionReason.PendingTransferNotFound);
        }

        if (request.AmountMinor <= 0 || request.AmountMinor > hold.AmountMinor)
        {
            return Rejected(RejectionReason.PostExceedsPendingAmount);
        }

        foreach (var entry in State.Pending.Values)
        {
            if (entry.PendingTransferId == pendingId)
            {
                // Every post or void of one pending transfer has the same id, so a second claim of the
                // hold under another id is a bug, never a client's race.
                Fail($"the hold of pending transfer '{pendingId}' is claimed twice");
            }
        }

        State.Pending.Add(request.TransferId, new PendingEntry(request.Side, request.AmountMinor, request.External, request.Epoch, request.Step, pendingId, request.CounterpartyAccountId, request.Expiry));
        State.Version++;
        changed = true;
        AssertInvariants();
        return Prepared();
    }

    /// <summary>Applies a hold, post or void entry that has just left <see cref="AccountState.Pending"/>.</summary>
    private void ApplyHoldStep(string transferId, PendingEntry entry)
    {
        var debit = entry.Side == EntrySide.Debit;
        if (entry.Step == HoldStep.Hold)
        {
            if (debit)
            {
                State.ReservedMinor -= entry.AmountMinor;
                State.PendingDebitMinor = checked(State.PendingDebitMinor + entry.AmountMinor);
            }
            else
            {
                State.IncomingMinor -= entry.AmountMinor;
                State.PendingCreditMinor = checked(State.PendingCreditMinor + entry.AmountMinor);
            }

            (State.Holds ??= new Dictionary<string, HoldEntry>(StringComparer.Ordinal)).Add(transferId, new HoldEntry(entry.Side, entry.AmountMinor));
            return;
        }

        if (entry.PendingTransferId is not { } pendingId || State.Holds is null || !State.Holds.Remove(pendingId, out var hold))
        {
            Fail($"the {entry.Step} '{transferId}' ends a hold that is not here");
            return;
        }

        // A post moves its amount and releases the rest; a void moves nothing and releases all.
        var movedMinor = entry.Step == HoldStep.Post ? entry.AmountMinor : 0;
        if (debit)
        {
            State.PendingDebitMinor -= hold.AmountMinor;
            State.AvailableMinor = checked(State.AvailableMinor + hold.AmountMinor - movedMinor);
        }
        else
        {
            State.PendingCreditMinor -= hold.AmountMinor;
            State.AvailableMinor = checked(State.AvailableMinor + movedMinor);
        }
    }

    private void AssertHolds()
    {
        long debits = 0;
        long credits = 0;
        foreach (var hold in State.Holds?.Values ?? Enumerable.Empty<HoldEntry>())
        {
            if (hold.AmountMinor <= 0)
            {
                Fail($"hold amount {hold.AmountMinor} is not positive");
            }

            if (hold.Side == EntrySide.Debit)
            {
                debits = checked(debits + hold.AmountMinor);
            }
            else
            {
                credits = checked(credits + hold.AmountMinor);
            }
        }

        if (State.PendingDebitMinor != debits)
        {
            Fail($"pending debit {State.PendingDebitMinor} != sum of debit holds {debits}");
        }

        if (State.PendingCreditMinor != credits)
        {
            Fail($"pending credit {State.PendingCreditMinor} != sum of credit holds {credits}");
        }
    }
}
