namespace Transactor.Domain;

/// <summary>
/// The rules of one account, in plain C#: the account grain persists the state this class changes,
/// and tests exercise it without a cluster. Every change keeps these invariants, checked after each
/// change and whenever state is loaded:
/// available ≥ its floor (0, or minus the credit limit of an account that allows an overdraft),
/// held ≥ 0, reserved = Σ pending debits, incoming = Σ pending credits,
/// pending debit and pending credit = Σ of the holds of pending (two-phase) transfers on each side,
/// and the sum of all these fits in 64 bits.
/// </summary>
public sealed partial class AccountBook(string accountId, AccountState state)
{
    /// <summary>The most movements one account may have prepared and not yet applied at once.</summary>
    public const int MaxPendingEntries = 100_000;

    public string AccountId { get; } = accountId;

    public AccountState State { get; } = state;

    public bool IsOpen => State.Currency is not null;

    public OpenAccountResult Open(string currency, string? owner, DateTimeOffset now) => Open(currency, owner, now, AccountLimits.Default);

    /// <summary>Opens the account with <paramref name="limits"/>; opening again with the same currency, owner, limits and metadata changes nothing.</summary>
    public OpenAccountResult Open(string currency, string? owner, DateTimeOffset now, AccountLimits limits, MetadataMap? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (!Currency.IsValid(currency))
        {
            return new(OpenAccountStatus.InvalidCurrency, null);
        }

        if (!limits.IsValid)
        {
            return new(OpenAccountStatus.InvalidLimits, null);
        }

        if (IsOpen)
        {
            var same = State.Currency == currency && State.Owner == owner && LimitsNow == limits && Equals(State.Metadata, metadata);
            return new(same ? OpenAccountStatus.AlreadyOpen : OpenAccountStatus.Conflict, Snapshot());
        }

        State.Currency = currency;
        State.Owner = owner;
        State.OpenedAt = now;
        State.Metadata = metadata;
        State.AllowOverdraft = limits.AllowOverdraft;
        State.CreditLimitMinor = limits.CreditLimitMinor;
        StartHistory(now, opened: true);
        State.Version++;
        AssertInvariants();
        return new(OpenAccountStatus.Opened, Snapshot());
    }

    /// <summary>Promises this account's side of a movement; see <c>IAccountGrain.Prepare</c>.</summary>
    /// <param name="changed">True when the state changed and must be persisted.</param>
    public PrepareResult Prepare(PrepareRequest request, out bool changed)
    {
        ArgumentNullException.ThrowIfNull(request);
        changed = false;
        if (!IsOpen)
        {
            return Rejected(RejectionReason.AccountNotFound);
        }

        if (State.Pending.TryGetValue(request.TransferId, out var existing))
        {
            if (existing.Side != request.Side || existing.AmountMinor != request.AmountMinor)
            {
                throw new LedgerInvariantException(
                    $"Account '{AccountId}': transfer '{request.TransferId}' prepared as {existing.Side} {existing.AmountMinor}, now asked as {request.Side} {request.AmountMinor}.");
            }

            if (existing.Epoch > request.Epoch)
            {
                // A later driver has prepared it here: this request comes from one it fenced out.
                return new(PrepareStatus.Superseded, RejectionReason.None, State.Currency);
            }

            if (existing.Epoch < request.Epoch)
            {
                // The entry now belongs to the later driver: from here on, only its epoch's decision applies it.
                State.Pending[request.TransferId] = existing with { Epoch = request.Epoch };
                changed = true;
            }

            return Prepared();
        }

        if (request.Step is HoldStep.Post or HoldStep.Void)
        {
            return PrepareEndOfHold(request, out changed);
        }

        if (request.Currency is not null && request.Currency != State.Currency)
        {
            return Rejected(RejectionReason.CurrencyMismatch);
        }

        if (State.Locked)
        {
            return Rejected(RejectionReason.AccountLocked);
        }

        if (!Money.IsValidAmount(request.AmountMinor))
        {
            return Rejected(RejectionReason.InvalidAmount);
        }

        if (State.Pending.Count >= MaxPendingEntries)
        {
            throw new InvalidOperationException(
                $"Account '{AccountId}' has {State.Pending.Count} movements in flight, the limit is {MaxPendingEntries}.");
        }

        if (request.Step == HoldStep.Hold && (State.Holds?.Count ?? 0) >= MaxHolds)
        {
            return Rejected(RejectionReason.BalanceLimitExceeded);
        }

        if (request.Side == EntrySide.Debit)
        {
            // Both terms are within ±10^15, so the subtraction cannot overflow.
            if (State.AvailableMinor - request.AmountMinor < FloorMinor)
            {
                return Rejected(RejectionReason.InsufficientFunds);
            }

            State.AvailableMinor -= request.AmountMinor;
            State.ReservedMinor = checked(State.ReservedMinor + request.AmountMinor);
        }
        else
        {
            if (!FitsAfterCredit(request.AmountMinor))
            {
                return Rejected(RejectionReason.BalanceLimitExceeded);
            }

            State.IncomingMinor += request.AmountMinor;
        }

        State.Pending.Add(request.TransferId, new PendingEntry(request.Side, request.AmountMinor, request.External, request.Epoch, request.Step, null, request.CounterpartyAccountId, request.Expiry));
        State.Version++;
        changed = true;
        AssertInvariants();
        return Prepared();
    }

    /// <summary>True when a movement is prepared here under <paramref name="transferId"/> and not yet applied or released.</summary>
    public bool Holds(string transferId) => State.Pending.ContainsKey(transferId);

    /// <summary>
    /// Applies a movement committed under <paramref name="decidedEpoch"/>; see <c>IAccountGrain.Commit</c>.
    /// An entry prepared under an earlier epoch is released instead. Changes nothing when none is
    /// prepared under the id. <paramref name="metadata"/>, the movement's key/values, goes into the
    /// history entry the apply records; no rule reads it.
    /// </summary>
    public CommitOutcome Commit(string transferId, long decidedEpoch, MetadataMap? metadata = null)
    {
        if (!State.Pending.TryGetValue(transferId, out var entry))
        {
            return CommitOutcome.NotHeld;
        }

        if (entry.Epoch < decidedEpoch)
        {
            // Every account was prepared under the deciding epoch before the decision, and an entry
            // only moves to later epochs: this one was added after the movement was applied here,
            // by a driver that the deciding epoch had fenced out. Applying it would apply the movement twice.
            Release(transferId);
            return CommitOutcome.ReleasedLatePrepare;
        }

        if (entry.Epoch > decidedEpoch)
        {
            Fail($"transfer '{transferId}' is prepared under epoch {entry.Epoch}, after the epoch {decidedEpoch} that decided it");
        }

        State.Pending.Remove(transferId);

        if (entry.Step != HoldStep.None)
        {
            ApplyHoldStep(transferId, entry);
        }
        else if (entry.Side == EntrySide.Debit)
        {
            State.ReservedMinor -= entry.AmountMinor;
        }
        else
        {
            State.IncomingMinor -= entry.AmountMinor;
            State.AvailableMinor = checked(State.AvailableMinor + entry.AmountMinor);
            if (entry.External)
            {
                RememberDeposit(transferId, entry.AmountMinor);
            }
        }

        RecordApplied(transferId, entry, metadata);
        State.Version++;
        AssertInvariants();
        return CommitOutcome.Applied;
    }

    /// <summary>Releases a prepared movement. Returns false (and changes nothing) when none is prepared under the id.</summary>
    public bool Abort(string transferId) => Release(transferId);

    private bool Release(string transferId)
    {
        if (!State.Pending.Remove(transferId, out var entry))
        {
            return false;
        }

        if (!entry.MovesMoney)
        {
            // A post or void only claimed the hold; the hold stays as it was.
        }
        else if (entry.Side == EntrySide.Debit)
        {
            State.ReservedMinor -= entry.AmountMinor;
            State.AvailableMinor = checked(State.AvailableMinor + entry.AmountMinor);
        }
        else
        {
            State.IncomingMinor -= entry.AmountMinor;
        }

        State.Version++;
        AssertInvariants();
        return true;
    }

    public AccountSnapshot? Snapshot() => IsOpen
        ? new AccountSnapshot(
            AccountId,
            State.Currency!,
            State.Owner,
            State.AvailableMinor,
            State.HeldMinor,
            State.ReservedMinor,
            State.Locked,
            State.Version,
            State.OpenedAt,
            State.IncomingMinor,
            State.PendingDebitMinor,
            State.PendingCreditMinor,
            State.AllowOverdraft,
            State.CreditLimitMinor,
            State.Metadata)
        : null;

    /// <summary>The lowest available balance the account's limits allow: 0, or minus its credit limit.</summary>
    public long FloorMinor => State.AllowOverdraft ? -State.CreditLimitMinor : 0;

    private AccountLimits LimitsNow => new(State.AllowOverdraft, State.CreditLimitMinor);

    /// <summary>
    /// Changes the account's limits (an administrator's act). Refused, changing nothing, when
    /// available is already below what the new limits allow: the invariant available ≥ floor holds
    /// at every step, so a limit is lowered only as far as the balance allows.
    /// </summary>
    public SetLimitsStatus SetLimits(AccountLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (!IsOpen)
        {
            return SetLimitsStatus.AccountNotFound;
        }

        if (!limits.IsValid)
        {
            return SetLimitsStatus.InvalidLimits;
        }

        if (State.AvailableMinor < limits.FloorMinor)
        {
            return SetLimitsStatus.BalanceBelowLimit;
        }

        if (LimitsNow != limits)
        {
            State.AllowOverdraft = limits.AllowOverdraft;
            State.CreditLimitMinor = limits.CreditLimitMinor;
            State.Version++;
            AssertInvariants();
        }

        return SetLimitsStatus.Changed;
    }

    /// <summary>Throws <see cref="LedgerInvariantException"/> when the state breaks an invariant: a bug, never a client's mistake.</summary>
    public void AssertInvariants()
    {
        var s = State;
        long reserved = 0;
        long incoming = 0;
        foreach (var entry in s.Pending.Values)
        {
            if (entry.AmountMinor <= 0)
            {
                Fail($"pending amount {entry.AmountMinor} is not positive");
            }

            if (!entry.MovesMoney)
            {
                // A post or void moves nothing until applied; the hold it ends must be here, and cover it.
                if (s.Holds?.GetValueOrDefault(entry.PendingTransferId!) is not { } hold || hold.Side != entry.Side || hold.AmountMinor < entry.AmountMinor)
                {
                    Fail($"the {entry.Step} of pending transfer '{entry.PendingTransferId}' has no hold of {entry.Side} {entry.AmountMinor} to end");
                }
            }
            else if (entry.Side == EntrySide.Debit)
            {
                reserved = checked(reserved + entry.AmountMinor);
            }
            else
            {
                incoming = checked(incoming + entry.AmountMinor);
            }
        }

        if (s.CreditLimitMinor < 0 || s.CreditLimitMinor > Money.MaxAmountMinor || (!s.AllowOverdraft && s.CreditLimitMinor != 0))
        {
            Fail($"credit limit {s.CreditLimitMinor} (overdraft {(s.AllowOverdraft ? "allowed" : "not allowed")}) is not valid");
        }

        if (s.AvailableMinor < FloorMinor)
        {
            Fail($"available {s.AvailableMinor} < {FloorMinor}");
        }

        if (s.HeldMinor < 0)
        {
            Fail($"held {s.HeldMinor} < 0");
        }

        if (s.ReservedMinor != reserved)
        {
            Fail($"reserved {s.ReservedMinor} != sum of pending debits {reserved}");
        }

        if (s.IncomingMinor != incoming)
        {
            Fail($"incoming {s.IncomingMinor} != sum of pending credits {incoming}");
        }

        AssertHolds();
        AssertHistory();

        try
        {
            _ = checked(s.AvailableMinor + s.HeldMinor + s.ReservedMinor + s.IncomingMinor + s.PendingDebitMinor + s.PendingCreditMinor);
        }
        catch (OverflowException)
        {
            Fail("balances overflow 64 bits");
        }

        if (!IsOpen && (s.Pending.Count > 0 || s.AvailableMinor != 0 || s.HeldMinor != 0 || s.Holds is { Count: > 0 }))
        {
            Fail("an account that is not open holds money");
        }
    }

    private bool FitsAfterCredit(long amountMinor)
    {
        try
        {
            _ = checked(State.AvailableMinor + State.HeldMinor + State.ReservedMinor + State.IncomingMinor + State.PendingDebitMinor + State.PendingCreditMinor + amountMinor);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    private PrepareResult Prepared() => new(PrepareStatus.Prepared, RejectionReason.None, State.Currency);

    private PrepareResult Rejected(RejectionReason reason) => new(PrepareStatus.Rejected, reason, State.Currency);

    private void Fail(string what) =>
        throw new LedgerInvariantException($"Account '{AccountId}' version {State.Version}: {what}.");
}

/// <summary>What <see cref="AccountBook.Commit"/> did.</summary>
public enum CommitOutcome
{
    /// <summary>Nothing is prepared under the id: nothing changed.</summary>
    NotHeld,

    /// <summary>The entry of the deciding epoch was applied.</summary>
    Applied,

    /// <summary>The entry was prepared under an earlier epoch than the deciding one (a late prepare) and was released, not applied.</summary>
    ReleasedLatePrepare,
}

/// <summary>A ledger invariant does not hold: a bug in Transactor, never a client's mistake.</summary>
[GenerateSerializer, Alias("Transactor.LedgerInvariantException")]
public sealed class LedgerInvariantException : Exception
{
    public LedgerInvariantException()
    {
    }

    public LedgerInvariantException(string message)
        : base(message)
    {
    }

    public LedgerInvariantException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
