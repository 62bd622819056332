using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Serialization;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>
/// See <see cref="IRecoveryShardGrain"/> and docs/transfers.md. Reentrant: its own turns only touch
/// memory between awaits, and every await is followed by a fresh look at the list.
/// </summary>
[Reentrant]
public sealed partial class RecoveryShardGrain(
    [PersistentState("recovery", StorageNames.Ledger)] IPersistentState<RecoveryShardState> state,
    IOptions<TransferOptions> options,
    Serializer serializer,
    TimeProvider time,
    IClusterMembershipService membership,
    ILogger<RecoveryShardGrain> logger) : Grain, IRecoveryShardGrain, IRemindable
{
    /// <summary>Most movements one shard lists at once; beyond it new movements are refused (back-pressure).</summary>
    public const int MaxInFlight = 100_000;

    /// <summary>
    /// A listing larger than this (in the stored list's encoding) is large: a linked transfer of many
    /// legs, or a movement with much metadata. An ordinary transfer's listing is about 300 bytes.
    /// </summary>
    public const int LargeListingBytes = 2 * 1024;

    /// <summary>
    /// Most bytes of large listings one shard lists at once. Every write of a shard's list carries
    /// every listing, so this bounds what large movements add to each write, whoever's movement the
    /// write is for. A new large movement that would go beyond it is refused (back-pressure, nothing
    /// recorded) unless the shard lists no large one: any one movement fits.
    /// </summary>
    public const int MaxLargeListedBytes = 256 * 1024;

    /// <summary>Most movements one reminder tick hands to coordinators.</summary>
    public const int MaxRecoveriesPerTick = 1_000;

    /// <summary>How often removals that no listing has carried to storage yet are written on their own.</summary>
    public static readonly TimeSpan RemovalFlushInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How soon after it activates a shard hands what it loaded to coordinators. Its previous
    /// activation is gone (its silo died, or it was collected), and so, most likely, are the drivers
    /// of what it lists; a client's retry may come first, and then finds the lease free.
    /// </summary>
    public static readonly TimeSpan ActivationSweepDelay = TimeSpan.FromSeconds(1);

    private const string SweepReminder = "sweep";

    private readonly TransferOptions _options = options.Value;
    private readonly Dictionary<string, ListedMovement> _listings = new(StringComparer.Ordinal);

    /// <summary>Row reads in flight by key, so that a movement ending meanwhile sends them to read again.</summary>
    private readonly Dictionary<string, RowReads> _rowReads = new(StringComparer.Ordinal);

    /// <summary>Counts the movements that left the list while a read of their row was in flight.</summary>
    private long _endings;

    /// <summary>The sum of <see cref="ListedMovement.LargeBytes"/> over the list: what large listings add to each write.</summary>
    private long _largeListedBytes;
    private ShardListStore _list = null!;
    private IGrainStorage _rows = null!;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // A coordinator of a previous activation may still drive a listed movement; the next lease
        // on it is handed out with a later epoch, stored first, which fences that driver out.
        var shard = this.GetPrimaryKeyLong();
        _list = new ShardListStore(state, serializer, _listings, shard.ToString(CultureInfo.InvariantCulture), _options.RecoveryWriteDelay, time, failure =>
        {
            LogListWriteFailed(logger, failure, shard);
            DeactivateOnIdle();
        });
        foreach (var listed in _list.Load())
        {
            var loaded = new ListedMovement(listed.ListedAt, listed.Record) { Epoch = listed.Epoch };
            // Counted against the budget as any listing is, so that a restart does not reset it.
            CountIfLarge(loaded, _list.Encode(listed.TransferId, loaded));
            _listings[listed.TransferId] = loaded;
        }

        if (_listings.Count > 0)
        {
            // Without this, what a dead silo's shard listed waits for the reminder: up to a
            // RecoveryDueTime after this activation registers it again, and then a RecoveryPeriod more.
            string[] loaded = [.. _listings.Keys];
            this.RegisterGrainTimer(_ => SweepLoaded(loaded), new GrainTimerCreationOptions(ActivationSweepDelay, Timeout.InfiniteTimeSpan));
        }

        _rows = ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Ledger);
        // One reminder per shard, registered once per activation: it outlives this silo and
        // brings the shard back to finish what it lists.
        await this.RegisterOrUpdateReminder(SweepReminder, _options.RecoveryDueTime, _options.RecoveryPeriod, cancellationToken);
        this.RegisterGrainTimer(FlushRemovals, RemovalFlushInterval, RemovalFlushInterval);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        await FlushRemovals(cancellationToken);
        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    public async Task<DriveTicket> Begin(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        _list.ThrowIfBroken();
        var transferId = request.TransferId;
        var found = await Lookup(transferId);
        while (found is { Listing: null, Ended: null } && _listings.ContainsKey(transferId))
        {
            // Listed by a concurrent call while this one read the row: answer from that listing.
            found = await Lookup(transferId);
        }

        if (found.Ended is { Record: { } ended } row)
        {
            return new DriveTicket(ended, null, Conflict: ended.Request != request, Completed: true, Result: Result(ended, row));
        }

        if (found.Listing is { } listing)
        {
            // Listed already (a retry, or the same key with another request): the listing must be durable.
            await _list.Durable();
            return await Ticket(transferId, listing, request);
        }

        // Refused before anything is recorded, as admission refuses: a retry of the key is a first attempt.
        if (_listings.Count >= MaxInFlight)
        {
            throw new LedgerOverloadedException($"Recovery shard {this.GetPrimaryKeyLong()} lists {_listings.Count} movements, the limit is {MaxInFlight}: nothing was recorded; retry later with the same idempotency key.");
        }

        // Listing the record is what records it: durable before any account is touched. Concurrent
        // retries of the key find the lease held for this caller meanwhile, and wait for the outcome.
        // The first lease (epoch 1) is stored with the listing: the caller drives under it.
        var created = ListedMovement.Begun(request, time, Caller());
        var bytes = _list.Encode(transferId, created);
        if (bytes > LargeListingBytes && _largeListedBytes > 0 && _largeListedBytes + bytes > MaxLargeListedBytes)
        {
            throw new LedgerOverloadedException($"Recovery shard {this.GetPrimaryKeyLong()} lists {_largeListedBytes} bytes of large movements, the limit is {MaxLargeListedBytes}, and this one takes {bytes}: nothing was recorded; retry later with the same idempotency key.");
        }

        (created.RowRead, created.RowETag) = (true, found.RowETag);
        CountIfLarge(created, bytes);
        _listings.Add(transferId, created);
        await _list.Stored(_list.Changed());
        if (!created.Holds(1))
        {
            // The write outlasted the lease and a retry or recovery took a later one: only that one drives.
            return new DriveTicket(created.Record, null, Conflict: false, Completed: false, Created: true);
        }

        return new DriveTicket(created.Record, _options.LeaseDuration, Conflict: false, Completed: false, Created: true, Epoch: 1);
    }

    public async Task<DriveTicket> Claim(string transferId)
    {
        _list.ThrowIfBroken();
        var found = await Lookup(transferId);
        if (found.Listing is not { Record: { } record } listing)
        {
            return new DriveTicket(found.Ended?.Record, null, Conflict: false, Completed: found.Ended is not null);
        }

        await _list.Durable();
        return await Ticket(transferId, listing, record.Request);
    }

    public Task<TimeSpan?> RenewLease(string transferId, long epoch)
    {
        _list.ThrowIfBroken();
        // Nobody has taken the lease since: only its time grows, the epoch stays. Time is liveness
        // here; a lease taken over after all is fenced by its epoch.
        var renewed = _listings.TryGetValue(transferId, out var listing) && listing.Renew(epoch, time);
        return Task.FromResult<TimeSpan?>(renewed ? _options.LeaseDuration : null);
    }

    public Task ReleaseLease(string transferId, long epoch)
    {
        // Nothing is stored: the epoch stays, and the next lease gets the next one, stored before it is handed out.
        if (_listings.TryGetValue(transferId, out var listing) && listing.Release(epoch))
        {
            LogLeaseReleased(logger, transferId, epoch);
        }

        return Task.CompletedTask;
    }

    public Task<TransferRecord?> Decide(string transferId, RejectionReason reason, long epoch) => DecideLinked(transferId, reason, null, epoch);

    public async Task<TransferRecord?> DecideLinked(string transferId, RejectionReason reason, int? failedLeg, long epoch)
    {
        _list.ThrowIfBroken();
        if (!_listings.TryGetValue(transferId, out var listing) || listing.Record is null)
        {
            return null;
        }

        if (!listing.Decide(reason, epoch, time.GetUtcNow(), failedLeg))
        {
            // Decided already, or a later lease has been handed out: its driver may be preparing now,
            // and must find either no decision or one made under an epoch all its prepares supersede.
            await _list.Durable();
            return listing.Record;
        }

        await _list.Stored(_list.Changed());
        return listing.Record;
    }

    public Task Complete(string transferId, AccountSnapshot? debit, AccountSnapshot? credit) => Complete(transferId, debit, credit, null);

    public Task CompleteLinked(string transferId, IReadOnlyList<AccountSnapshot> accounts) => Complete(transferId, null, null, accounts);

    private Task Complete(string transferId, AccountSnapshot? debit, AccountSnapshot? credit, IReadOnlyList<AccountSnapshot>? accounts)
    {
        _list.ThrowIfBroken();
        if (!_listings.TryGetValue(transferId, out var listing))
        {
            // Ended already (a driver that outlived its lease completes after its successor).
            return Task.CompletedTask;
        }

        if (listing.Record is not { Status: not TransferStatus.Pending } decided)
        {
            throw new InvalidOperationException($"Transfer '{transferId}' was completed before it was decided.");
        }

        if (listing.Completing)
        {
            // A driver that outlived its lease, completing while its successor does: the outcome is noted.
            return Task.CompletedTask;
        }

        // Every account has applied the decision: from now on a read of the key gets the outcome. The
        // driver waits only for this note, not for the write, before it answers its client. The first
        // outcome noted stays: after a failed write, the next driver's balances (read later) would
        // contradict what a reader was told. The write belongs to no request: a deactivation does
        // not wait for it, and the listing, still in the stored list, is then recovered once more.
        listing.Outcome ??= new TransferState { Record = decided, Completed = true, Debit = debit, Credit = credit, Accounts = accounts };
        _ = WriteOutcome(transferId, listing, listing.Outcome);
        return Task.CompletedTask;
    }

    public async Task<TransferResult?> WaitForResult(string transferId, TimeSpan timeout)
    {
        _list.ThrowIfBroken();
        if ((await Lookup(transferId)).Listing is { } listing)
        {
            listing.Ended ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            try
            {
                await listing.Ended.Task.WaitAsync(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero, time);
            }
            catch (TimeoutException)
            {
                // Still being driven (or waiting for recovery): report where it stands.
            }
        }

        return await GetResult(transferId);
    }

    public async Task<TransferResult?> GetResult(string transferId)
    {
        _list.ThrowIfBroken();
        var found = await Lookup(transferId);
        if (found.Listing is { Record: { } listed } listing)
        {
            // Never hand out a listing that a failed write may not have stored. Still listed means
            // pending to a client, even once decided, until a driver has reported that every
            // account applied the decision (docs/transfers.md).
            await _list.Durable();
            return listing.Outcome is { } applied
                ? Result(applied.Record!, applied)
                : Result(listed with { Status = TransferStatus.Pending, Reason = RejectionReason.None, FailedLeg = null }, row: null);
        }

        return found.Ended is { Record: { } ended } row ? Result(ended, row) : null;
    }

    public Task<IReadOnlyList<string>> List(int limit) =>
        Task.FromResult<IReadOnlyList<string>>(_listings.OrderBy(e => e.Value.ListedAt).Take(limit).Select(e => e.Key).ToArray());

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (_list.Broken)
        {
            return Task.CompletedTask;
        }

        // Listed long enough, or driven under a lease whose holder's silo is dead: nobody else will finish it.
        var cutoff = time.GetUtcNow() - _options.RecoveryDueTime;
        Recover(_listings.Where(e => e.Value.ListedAt <= cutoff || e.Value.HolderIsDead(IsDead)).OrderBy(e => e.Value.ListedAt).Select(e => e.Key));
        return Task.CompletedTask;
    }

    /// <summary>The movements this activation loaded from storage, still listed: their drivers most likely died with the previous activation.</summary>
    private Task SweepLoaded(string[] loaded)
    {
        if (!_list.Broken)
        {
            Recover(loaded.Where(_listings.ContainsKey));
        }

        return Task.CompletedTask;
    }

    /// <summary>Hands up to <see cref="MaxRecoveriesPerTick"/> of <paramref name="transferIds"/> to coordinators.</summary>
    private void Recover(IEnumerable<string> transferIds)
    {
        var due = transferIds.Take(MaxRecoveriesPerTick).ToArray();
        if (due.Length == 0)
        {
            return;
        }

        var shard = this.GetPrimaryKeyLong();
        LogSweep(logger, shard, due.Length, _listings.Count);
        var coordinator = GrainFactory.GetCoordinator();
        foreach (var transferId in due)
        {
            // One-way: the coordinator claims the movement and finishes it, or finds it ended.
            coordinator.Recover(transferId).Ignore();
        }
    }

    /// <summary>Whether the membership view says <paramref name="silo"/> is dead (liveness only).</summary>
    private bool IsDead(SiloAddress silo) => membership.CurrentSnapshot.GetSiloStatus(silo) == SiloStatus.Dead;

    /// <summary>The silo of the coordinator calling, as it names itself (<see cref="TransferCoordinatorGrain.DriverSiloKey"/>).</summary>
    private static SiloAddress? Caller() => RequestContext.Get(TransferCoordinatorGrain.DriverSiloKey) as SiloAddress;

    /// <summary>
    /// Where a movement stands: listed (with its row read by this activation), ended (its row holds
    /// the outcome), or unknown (with the etag of its empty row, for the write at its end). A listing
    /// this activation loaded from storage is checked against the movement's row the first time it
    /// is asked for: the movement may have ended with its removal not yet stored, or have been listed
    /// by an earlier version that kept its record in the row. A pending record that an earlier
    /// version kept in the row and never listed is listed now, with epoch 0: its first lease gets epoch 1.
    /// </summary>
    private async Task<Found> Lookup(string transferId)
    {
        if (_listings.TryGetValue(transferId, out var listing) && listing.RowRead)
        {
            return new Found(listing, null, null);
        }

        var row = await ReadListedRow(transferId);
        // The list may have changed while the row was read.
        _listings.TryGetValue(transferId, out listing);
        if (listing is { RowRead: true })
        {
            return new Found(listing, null, null);
        }

        var stored = row.State;
        if (stored is { Completed: true, Record: not null })
        {
            if (listing is not null)
            {
                Remove(transferId, listing);
            }

            return new Found(null, stored, row.ETag);
        }

        if (stored.Record is { } pending)
        {
            listing ??= AddAdopted(transferId);
            if (listing.Record is null)
            {
                listing.Record = pending;
                _list.Changed();
            }
        }
        else if (listing is { Record: null })
        {
            // Listed by an earlier version that stopped before it wrote the record: no account was touched.
            Remove(transferId, listing);
            return new Found(null, null, row.ETag);
        }

        if (listing is null)
        {
            return new Found(null, null, row.ETag);
        }

        listing.RowRead = true;
        listing.RowETag = row.ETag;
        return new Found(listing, null, null);
    }

    private ListedMovement AddAdopted(string transferId)
    {
        // Its first lease gets epoch 1, which fences out a driver of the earlier version (epoch 0).
        var listing = new ListedMovement(time.GetUtcNow(), null);
        _listings.Add(transferId, listing);
        return listing;
    }

    /// <summary>
    /// The ticket for a caller of a listed movement: a conflict when the id holds another request,
    /// else the record, with a lease when nobody holds one. A lease gets the next epoch, and is
    /// handed out only once that epoch is stored: a later activation of this shard (after a crash,
    /// or a second one that Orleans' directory let run) starts from it, so no two drivers ever hold
    /// one epoch. No lease for a listing that left the list, or was leased again, while its caller
    /// waited for the list to be durable.
    /// </summary>
    private async Task<DriveTicket> Ticket(string transferId, ListedMovement listing, TransferRequest request)
    {
        var record = listing.Record!;
        if (record.Request != request)
        {
            return new DriveTicket(record, null, Conflict: true, Completed: false);
        }

        if (!IsListed(transferId, listing) || listing.TakeLease(time, _options.LeaseDuration, Caller(), IsDead) is not { } epoch)
        {
            return new DriveTicket(record, null, Conflict: false, Completed: false);
        }

        await _list.Stored(_list.Changed());
        if (!IsListed(transferId, listing) || !listing.Holds(epoch))
        {
            return new DriveTicket(listing.Record, null, Conflict: false, Completed: false);
        }

        return new DriveTicket(listing.Record, _options.LeaseDuration, Conflict: false, Completed: false, Created: false, Epoch: epoch);
    }

    /// <summary>Counts <paramref name="listing"/>, encoded in <paramref name="bytes"/>, against <see cref="MaxLargeListedBytes"/> when it is large.</summary>
    private void CountIfLarge(ListedMovement listing, int bytes)
    {
        if (bytes > LargeListingBytes)
        {
            listing.LargeBytes = bytes;
            _largeListedBytes += bytes;
        }
    }

    private bool IsListed(string transferId, ListedMovement listing) => _listings.TryGetValue(transferId, out var current) && current == listing;

    /// <summary>
    /// Writes the ended movement's outcome into its row, then takes it off the list. Never throws:
    /// after a failed write (logged) the movement stays listed, and the next lease holder completes it.
    /// </summary>
    private async Task WriteOutcome(string transferId, ListedMovement listing, TransferState outcome)
    {
        listing.Completing = true;
        try
        {
            // A listing loaded from storage by this activation is checked against its row first (its
            // etag is not known yet); a movement found ended there has left the list already.
            if ((await Lookup(transferId)).Listing != listing)
            {
                return;
            }

            var row = new GrainState<TransferState>(outcome) { ETag = listing.RowETag, RecordExists = listing.RowETag is not null };
            await _rows.WriteStateAsync(TransferState.StateName, LedgerGrains.TransferRowId(transferId), row);
            // Only once the outcome is durable may the movement leave the list.
            Remove(transferId, listing);
        }
        catch (Exception ex)
        {
            // The row may have changed under another writer: read it again before the next try.
            listing.RowRead = false;
            LogCompleteFailed(logger, ex, transferId);
        }
        finally
        {
            listing.Completing = false;
        }
    }

    /// <summary>
    /// Takes a movement off the list and wakes whoever waits for its end. Not written now: the next
    /// listing's write carries it, or the flush timer does. Until then a restart only lists an ended
    /// movement once more, which the check against its row drops.
    /// </summary>
    private void Remove(string transferId, ListedMovement listing)
    {
        if (_listings.TryGetValue(transferId, out var current) && current == listing)
        {
            _listings.Remove(transferId);
            _largeListedBytes -= listing.LargeBytes;
            _list.Changed();
            if (_rowReads.TryGetValue(transferId, out var reads))
            {
                reads.EndedAt = ++_endings;
            }
        }

        listing.Ended?.TrySetResult();
    }

    /// <summary>
    /// Reads a movement's row for <see cref="Lookup"/>, again if the movement ended while it was
    /// read. A read that began before the outcome was written may return the row without it; by
    /// then the listing is gone too, and the key would look unused: a retry would list it anew and
    /// apply the movement a second time.
    /// </summary>
    private async Task<(TransferState State, string? ETag)> ReadListedRow(string transferId)
    {
        if (!_rowReads.TryGetValue(transferId, out var reads))
        {
            _rowReads[transferId] = reads = new RowReads();
        }

        reads.Count++;
        try
        {
            while (true)
            {
                var before = _endings;
                var row = await ReadRow(transferId);
                if (reads.EndedAt <= before)
                {
                    return row;
                }
            }
        }
        finally
        {
            if (--reads.Count == 0)
            {
                _rowReads.Remove(transferId);
            }
        }
    }

    private async Task<(TransferState State, string? ETag)> ReadRow(string transferId)
    {
        var row = new GrainState<TransferState>(new TransferState());
        await _rows.ReadStateAsync(TransferState.StateName, LedgerGrains.TransferRowId(transferId), row);
        return (row.State ?? new TransferState(), row.ETag);
    }

    private static TransferResult Result(TransferRecord record, TransferState? row) =>
        new(record.Request, record.Status, record.Reason, row?.Debit, row?.Credit, record.CreatedAt, FailedLeg: record.FailedLeg, Accounts: row?.Accounts);

    private Task FlushRemovals(CancellationToken cancellation) => _list.Broken ? Task.CompletedTask : _list.Durable();

    private readonly record struct Found(ListedMovement? Listing, TransferState? Ended, string? RowETag);

    private sealed class RowReads
    {
        public int Count { get; set; }

        /// <summary>The value of <see cref="_endings"/> when the movement last left the list, or 0.</summary>
        public long EndedAt { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovery shard {Shard}: handing {Due} of {Listed} listed movements to coordinators")]
    private static partial void LogSweep(ILogger logger, long shard, int due, int listed);

    [LoggerMessage(Level = LogLevel.Error, Message = "Recovery shard {Shard}: writing its list failed; the activation is dropped and the next one reads storage")]
    private static partial void LogListWriteFailed(ILogger logger, Exception exception, long shard);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing the outcome of transfer {TransferId} failed; it stays listed, and its next lease holder completes it")]
    private static partial void LogCompleteFailed(ILogger logger, Exception exception, string transferId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Transfer {TransferId}: its driver gave up the lease of epoch {Epoch} after a failure; the next caller takes over at once")]
    private static partial void LogLeaseReleased(ILogger logger, string transferId, long epoch);
}
