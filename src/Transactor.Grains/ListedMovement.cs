namespace Transactor.Grains;

/// <summary>
/// A movement a recovery shard lists, as its activation holds it: what is stored of it (when listed,
/// its record, the epoch of its latest lease) and what only this activation knows. The fencing rules
/// of a lease and a decision live here (docs/transfers.md, "Why no movement is applied twice"):
/// a lease gets the next epoch, which the shard stores before it hands the lease out; only the
/// latest epoch renews or decides. Use it only from its shard's turns.
/// </summary>
internal sealed class ListedMovement(DateTimeOffset listedAt, TransferRecord? record)
{
    public DateTimeOffset ListedAt { get; } = listedAt;

    /// <summary>The request, and the decision once made; null until the row of an earlier version's listing is read.</summary>
    public TransferRecord? Record
    {
        get;
        set
        {
            field = value;
            Encoded = null;
        }
    } = record;

    /// <summary>The epoch of the latest lease handed out (stored before it is handed out); 0 before the first.</summary>
    public long Epoch
    {
        get;
        set
        {
            field = value;
            Encoded = null;
        }
    }

    /// <summary>
    /// When the latest lease was handed out or renewed (<see cref="TimeProvider.GetTimestamp"/>: a
    /// clock that never steps). Liveness only: until the lease's duration has passed no other caller
    /// gets one, and one taken over after all is fenced by its epoch. Null: none handed out by this activation, or the one handed out was given back.
    /// </summary>
    public long? LeasedAt { get; private set; }

    /// <summary>
    /// The silo of the latest lease's holder, as its driver named it; null when unknown. Liveness only:
    /// a lease whose holder's silo has been declared dead is over before its time, since nobody will
    /// drive under it; a holder that runs after all is fenced by its epoch like any other.
    /// </summary>
    public SiloAddress? LeaseHolder { get; private set; }

    /// <summary>What the stored list holds of this listing; null until the next write encodes it.</summary>
    public byte[]? Encoded { get; set; }

    /// <summary>
    /// For a large listing (over <see cref="RecoveryShardGrain.LargeListingBytes"/>), its size when
    /// listed, which counts against <see cref="RecoveryShardGrain.MaxLargeListedBytes"/> while it is
    /// listed (a decision or a lease later adds a few bytes); 0 for any other.
    /// </summary>
    public int LargeBytes { get; set; }

    /// <summary>True once this activation has read the movement's row: it has not ended, and its etag is known.</summary>
    public bool RowRead { get; set; }

    public string? RowETag { get; set; }

    /// <summary>The outcome as a driver reported it once every account had applied the decision; null before.</summary>
    public TransferState? Outcome { get; set; }

    /// <summary>True while the outcome's write, once every account has applied the decision, is under way.</summary>
    public bool Completing { get; set; }

    /// <summary>Set when the movement leaves the list; created only when somebody waits for it.</summary>
    public TaskCompletionSource? Ended { get; set; }

    /// <summary>A movement listed now, with its first lease (epoch 1) for the caller that began it.</summary>
    public static ListedMovement Begun(TransferRequest request, TimeProvider time, SiloAddress? holder = null)
    {
        var now = time.GetUtcNow();
        return new ListedMovement(now, new TransferRecord(request, TransferStatus.Pending, RejectionReason.None, now, null))
        {
            Epoch = 1,
            LeasedAt = time.GetTimestamp(),
            LeaseHolder = holder,
        };
    }

    /// <summary>
    /// Takes the next lease for <paramref name="holder"/> when nobody holds one (none handed out, the
    /// latest older than <paramref name="duration"/>, or its holder's silo is dead by
    /// <paramref name="isDead"/>) and the outcome is not being written: returns its epoch, which the
    /// caller must store before it hands the lease out. Null when a lease is held.
    /// </summary>
    public long? TakeLease(TimeProvider time, TimeSpan duration, SiloAddress? holder = null, Func<SiloAddress, bool>? isDead = null)
    {
        if (Completing || (LeasedAt is { } leasedAt && time.GetElapsedTime(leasedAt) < duration && !HolderIsDead(isDead)))
        {
            return null;
        }

        LeasedAt = time.GetTimestamp();
        LeaseHolder = holder;
        return ++Epoch;
    }

    /// <summary>True when the latest lease's holder is known and its silo is dead: nobody drives under that lease.</summary>
    public bool HolderIsDead(Func<SiloAddress, bool>? isDead) => LeaseHolder is { } holder && isDead is not null && isDead(holder);

    /// <summary>True while <paramref name="epoch"/> is the latest lease and the outcome is not being written: its holder may drive.</summary>
    public bool Holds(long epoch) => Epoch == epoch && !Completing;

    /// <summary>Extends the lease of <paramref name="epoch"/> when it is still the latest; its epoch stays.</summary>
    public bool Renew(long epoch, TimeProvider time)
    {
        if (!Holds(epoch))
        {
            return false;
        }

        LeasedAt = time.GetTimestamp();
        return true;
    }

    /// <summary>Ends the lease of <paramref name="epoch"/> before its time when it is still the latest: the next caller takes the next lease at once.</summary>
    public bool Release(long epoch)
    {
        if (!Holds(epoch))
        {
            return false;
        }

        LeasedAt = null;
        LeaseHolder = null;
        return true;
    }

    /// <summary>
    /// Records the decision of the driver of <paramref name="epoch"/>, with that epoch, when nothing is
    /// decided yet and no later lease has been handed out (its driver may be preparing now). Returns
    /// false, changing nothing, otherwise.
    /// </summary>
    /// <param name="failedLeg">For a rejected linked transfer: the leg at fault.</param>
    public bool Decide(RejectionReason reason, long epoch, DateTimeOffset now, int? failedLeg = null)
    {
        if (Record is not { Status: TransferStatus.Pending } pending || Epoch != epoch)
        {
            return false;
        }

        Record = pending with
        {
            Status = reason == RejectionReason.None ? TransferStatus.Committed : TransferStatus.Rejected,
            Reason = reason,
            DecidedAt = now,
            DecidedEpoch = epoch,
            FailedLeg = reason == RejectionReason.None ? null : failedLeg,
        };
        return true;
    }
}
