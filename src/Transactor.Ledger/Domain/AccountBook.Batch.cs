using System.Diagnostics;
using System.Numerics;

namespace Transactor.Domain;

/// <summary>
/// The batch rules of one account: deposits, withdrawals and the dispute life cycle
/// (dispute, then resolve or chargeback) of a deposit, identified by a 32-bit transaction id.
/// They run on the same <see cref="AccountState"/> as the transfer protocol and keep every invariant
/// of <see cref="AssertInvariants"/>, notably available ≥ 0: a dispute whose deposit is larger than
/// the available balance is ignored (<see cref="BatchOutcome.ExceedsAvailable"/>) rather than
/// driving available negative as the classic toy engine does.
/// A rule that does not apply returns the reason and changes nothing.
/// </summary>
/// <remarks>
/// Uniqueness of transaction ids across accounts is the caller's job: an account only knows its
/// own deposits, so it can refuse a deposit id it holds already, never one used by another account
/// or by a withdrawal.
/// </remarks>
public sealed partial class AccountBook
{
    /// <summary>Credits a deposit to available and remembers it under <paramref name="tx"/> so it can be disputed.</summary>
    public BatchOutcome Deposit(uint tx, long amountMinor)
    {
        if (RefuseBatchChange(amountMinor) is { } refused)
        {
            return refused;
        }

        if (!FitsAfterBatchCredit(amountMinor))
        {
            return BatchOutcome.BalanceLimitExceeded;
        }

        if (!(State.Deposits ??= new DepositHistory()).TryAdd(tx, amountMinor))
        {
            return BatchOutcome.DuplicateTx;
        }

        State.AvailableMinor += amountMinor;
        return Changed();
    }

    /// <summary>Debits available, when available covers the amount.</summary>
    public BatchOutcome Withdraw(long amountMinor)
    {
        if (RefuseBatchChange(amountMinor) is { } refused)
        {
            return refused;
        }

        if (State.AvailableMinor < amountMinor)
        {
            return BatchOutcome.InsufficientFunds;
        }

        State.AvailableMinor -= amountMinor;
        return Changed();
    }

    /// <summary>Moves an undisputed deposit's amount from available to held; total is unchanged.</summary>
    public BatchOutcome Dispute(uint tx)
    {
        if (FindDeposit(tx, out var slot) is { } refused)
        {
            return refused;
        }

        var deposit = State.Deposits!.At(slot);
        if (deposit.Status != DepositStatus.Settled)
        {
            return deposit.Status == DepositStatus.Disputed ? BatchOutcome.AlreadyDisputed : BatchOutcome.ChargedBack;
        }

        // Transactor's invariant: available never goes negative, so a dispute the balance cannot cover is ignored.
        if (State.AvailableMinor < deposit.AmountMinor)
        {
            return BatchOutcome.ExceedsAvailable;
        }

        State.Deposits.SetStatusAt(slot, DepositStatus.Disputed);
        State.AvailableMinor -= deposit.AmountMinor;
        State.HeldMinor += deposit.AmountMinor;
        return Changed();
    }

    /// <summary>Ends a dispute in the client's favour: its amount moves from held back to available.</summary>
    public BatchOutcome Resolve(uint tx) => EndDispute(tx, DepositStatus.Settled);

    /// <summary>Ends a dispute by reversing the deposit: its amount leaves held and total, and the account locks.</summary>
    public BatchOutcome Chargeback(uint tx) => EndDispute(tx, DepositStatus.ChargedBack);

    /// <summary>
    /// Checks <see cref="AssertInvariants"/> and, in addition, that held equals the sum of the deposits
    /// under dispute. Costs a pass over the deposit history: for tests and end-of-run checks.
    /// </summary>
    public void AssertBatchInvariants()
    {
        AssertInvariants();
        var disputedMinor = State.Deposits?.SumDisputedMinor() ?? 0;
        if (State.HeldMinor != disputedMinor)
        {
            Fail($"held {State.HeldMinor} != sum of disputed deposits {disputedMinor}");
        }
    }

    private BatchOutcome EndDispute(uint tx, DepositStatus end)
    {
        if (FindDeposit(tx, out var slot) is { } refused)
        {
            return refused;
        }

        var deposit = State.Deposits!.At(slot);
        if (deposit.Status != DepositStatus.Disputed)
        {
            return deposit.Status == DepositStatus.ChargedBack ? BatchOutcome.ChargedBack : BatchOutcome.NotDisputed;
        }

        State.Deposits.SetStatusAt(slot, end);
        State.HeldMinor -= deposit.AmountMinor;
        if (end == DepositStatus.Settled)
        {
            State.AvailableMinor += deposit.AmountMinor;
        }
        else
        {
            State.Locked = true;
        }

        return Changed();
    }

    private BatchOutcome? RefuseBatchChange(long amountMinor)
    {
        if (!IsOpen)
        {
            return BatchOutcome.AccountNotFound;
        }

        if (State.Locked)
        {
            return BatchOutcome.AccountLocked;
        }

        return amountMinor <= 0 ? BatchOutcome.InvalidAmount : null;
    }

    private BatchOutcome? FindDeposit(uint tx, out int slot)
    {
        slot = -1;
        if (!IsOpen)
        {
            return BatchOutcome.AccountNotFound;
        }

        if (State.Locked)
        {
            return BatchOutcome.AccountLocked;
        }

        slot = State.Deposits?.IndexOf(tx) ?? -1;
        return slot < 0 ? BatchOutcome.UnknownTx : null;
    }

    // The parts are non-negative and their sum fits in 64 bits (an invariant), so the subtraction cannot overflow.
    private bool FitsAfterBatchCredit(long amountMinor) =>
        long.MaxValue - (State.AvailableMinor + State.HeldMinor + State.ReservedMinor + State.IncomingMinor + State.PendingDebitMinor + State.PendingCreditMinor) >= amountMinor;

    private BatchOutcome Changed()
    {
        State.Version++;
        AssertBatchInvariantsInDebug();
        return BatchOutcome.Applied;
    }

    // A pass over the history after every change is too slow for the batch engine's hot path in Release;
    // the engine checks every account once at the end, and its tests can ask for a check after every row.
    [Conditional("DEBUG")]
    private void AssertBatchInvariantsInDebug() => AssertBatchInvariants();
}

/// <summary>What a batch rule did. Values are stable: never renumber them.</summary>
[GenerateSerializer]
public enum BatchOutcome
{
    /// <summary>The rule applied and the state changed.</summary>
    Applied = 0,

    /// <summary>The account is not open.</summary>
    AccountNotFound = 1,

    /// <summary>The account is locked (a chargeback happened): every later row is ignored.</summary>
    AccountLocked = 2,

    /// <summary>The amount is zero or negative.</summary>
    InvalidAmount = 3,

    /// <summary>The transaction id was used before by a deposit or withdrawal.</summary>
    DuplicateTx = 4,

    /// <summary>Available does not cover the withdrawal.</summary>
    InsufficientFunds = 5,

    /// <summary>The deposit would overflow the 64-bit total.</summary>
    BalanceLimitExceeded = 6,

    /// <summary>No deposit of this account has the id (it does not exist, or belongs to another account).</summary>
    UnknownTx = 7,

    /// <summary>A dispute of a deposit that is under dispute already.</summary>
    AlreadyDisputed = 8,

    /// <summary>A resolve or chargeback of a deposit that is not under dispute.</summary>
    NotDisputed = 9,

    /// <summary>A dispute, resolve or chargeback of a deposit that was charged back.</summary>
    ChargedBack = 10,

    /// <summary>A dispute of a deposit larger than available: Transactor never lets available go negative.</summary>
    ExceedsAvailable = 11,

    /// <summary>A client API key asked for a dispute step on an account it does not own (never in the batch engine).</summary>
    NotOwner = 12,
}

/// <summary>Where a remembered deposit stands in its dispute life cycle. Persisted: never renumber.</summary>
[GenerateSerializer]
public enum DepositStatus : byte
{
    /// <summary>Marks a free slot of <see cref="DepositHistory"/>; never the status of a deposit.</summary>
    None = 0,

    /// <summary>Credited and not under dispute (never disputed, or resolved).</summary>
    Settled = 1,

    /// <summary>Under dispute: its amount is held.</summary>
    Disputed = 2,

    /// <summary>Reversed by a chargeback.</summary>
    ChargedBack = 3,
}

/// <summary>
/// One remembered deposit. Fields are ordered so the struct packs into 16 bytes
/// (8 + 4 + 1, padded), the unit of <see cref="DepositHistory"/>'s memory cost.
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.DepositRecord")]
public readonly record struct DepositRecord(
    [property: Id(0)] long AmountMinor,
    [property: Id(1)] uint Tx,
    [property: Id(2)] DepositStatus Status);

/// <summary>
/// An account's deposits by transaction id: an open-addressing hash table with linear probing over
/// one array of 16-byte records, at most three-quarters full, so 21 to 43 bytes per deposit and
/// one cache line per lookup. The hash is a fixed function of the id (never randomized per process),
/// so the persisted table is valid when loaded elsewhere.
/// </summary>
[GenerateSerializer, Alias("Transactor.DepositHistory")]
public sealed class DepositHistory
{
    /// <summary>Slots allocated for the first deposit; a power of two.</summary>
    public const int InitialCapacity = 8;

    /// <summary>The most deposits one account may remember: 2^30 slots of 16 bytes is already 16 GiB.</summary>
    public const int MaxCount = 1 << 29;

    // Fibonacci hashing: 2^32 / φ spreads sequential ids evenly over the high bits.
    private const uint HashMultiplier = 0x9E3779B9u;

    [Id(0)] private DepositRecord[] _slots = [];
    [Id(1)] private int _count;

    /// <summary>How many deposits are remembered.</summary>
    public int Count => _count;

    /// <summary>Remembers a deposit; false (and nothing changes) when <paramref name="tx"/> is remembered already.</summary>
    public bool TryAdd(uint tx, long amountMinor)
    {
        if (amountMinor <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(amountMinor), amountMinor, "A deposit's amount is positive.");
        }

        // Grow before probing so the probe below always finds a free slot.
        if ((_count + 1) * 4L > _slots.Length * 3L)
        {
            Grow();
        }

        var mask = _slots.Length - 1;
        for (var i = Home(tx); ; i = (i + 1) & mask)
        {
            ref readonly var slot = ref _slots[i];
            if (slot.Status == DepositStatus.None)
            {
                _slots[i] = new DepositRecord(amountMinor, tx, DepositStatus.Settled);
                _count++;
                return true;
            }

            if (slot.Tx == tx)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Forgets the deposit remembered under <paramref name="tx"/>; false when there is none. The
    /// entries after it in its probe run shift back into the gap (no tombstones), so lookups stay
    /// as short as if it had never been added.
    /// </summary>
    public bool Remove(uint tx)
    {
        var gap = IndexOf(tx);
        if (gap < 0)
        {
            return false;
        }

        var mask = _slots.Length - 1;
        for (var i = (gap + 1) & mask; _slots[i].Status != DepositStatus.None; i = (i + 1) & mask)
        {
            // An entry may move back into the gap only if its home is not after the gap in its run:
            // its distance from home must reach back over the gap.
            var home = Home(_slots[i].Tx);
            if (((i - home) & mask) >= ((i - gap) & mask))
            {
                _slots[gap] = _slots[i];
                gap = i;
            }
        }

        _slots[gap] = default;
        _count--;
        return true;
    }

    /// <summary>The deposit remembered under <paramref name="tx"/>, if any.</summary>
    public bool TryGet(uint tx, out DepositRecord deposit)
    {
        var slot = IndexOf(tx);
        deposit = slot < 0 ? default : _slots[slot];
        return slot >= 0;
    }

    /// <summary>
    /// Reads the slot where a lookup of <paramref name="tx"/> starts and returns its id. Tables of many
    /// accounts do not fit in cache: a caller about to apply many rows touches their slots first, in a
    /// loop with no branch on the result, so that their cache misses overlap instead of queueing.
    /// </summary>
    public uint Touch(uint tx) => _count == 0 ? 0 : _slots[Home(tx)].Tx;

    /// <summary>Sum of the amounts under dispute: what held must equal.</summary>
    public long SumDisputedMinor()
    {
        long sum = 0;
        foreach (var slot in _slots)
        {
            if (slot.Status == DepositStatus.Disputed)
            {
                sum = checked(sum + slot.AmountMinor);
            }
        }

        return sum;
    }

    internal int IndexOf(uint tx)
    {
        if (_count == 0)
        {
            return -1;
        }

        var mask = _slots.Length - 1;
        for (var i = Home(tx); ; i = (i + 1) & mask)
        {
            ref readonly var slot = ref _slots[i];
            if (slot.Status == DepositStatus.None)
            {
                return -1;
            }

            if (slot.Tx == tx)
            {
                return i;
            }
        }
    }

    internal DepositRecord At(int slot) => _slots[slot];

    internal void SetStatusAt(int slot, DepositStatus status)
    {
        Debug.Assert(status != DepositStatus.None, "A deposit never goes back to a free slot.");
        _slots[slot] = _slots[slot] with { Status = status };
    }

    private int Home(uint tx) => (int)((tx * HashMultiplier) >> (32 - BitOperations.Log2((uint)_slots.Length)));

    private void Grow()
    {
        if (_count >= MaxCount)
        {
            throw new InvalidOperationException($"An account remembers {_count} deposits, the limit is {MaxCount}.");
        }

        var old = _slots;
        _slots = new DepositRecord[old.Length == 0 ? InitialCapacity : old.Length * 2];
        var mask = _slots.Length - 1;
        foreach (var record in old)
        {
            if (record.Status == DepositStatus.None)
            {
                continue;
            }

            var i = Home(record.Tx);
            while (_slots[i].Status != DepositStatus.None)
            {
                i = (i + 1) & mask;
            }

            _slots[i] = record;
        }
    }
}
