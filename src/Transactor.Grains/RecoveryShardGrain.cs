using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Transactor.Grains;

/// <summary>The persisted state of a <see cref="RecoveryShardGrain"/>.</summary>
[GenerateSerializer, Alias("Transactor.RecoveryShardState")]
public sealed class RecoveryShardState
{
    /// <summary>Movements that have begun and not ended, with when they were listed.</summary>
    [Id(0)] public Dictionary<string, DateTimeOffset> InFlight { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// The records of listed movements: request, and decision once made. A listed id without one
    /// was listed by an earlier version, which kept the record in the movement's own grain.
    /// </summary>
    [Id(1)] public Dictionary<string, TransferRecord>? Records { get; set; }
}

/// <summary>See <see cref="IRecoveryShardGrain"/>. Reentrant: its own turns only touch memory between writes.</summary>
[Reentrant]
public sealed partial class RecoveryShardGrain(
    [PersistentState("recovery", StorageNames.Ledger)] IPersistentState<RecoveryShardState> state,
    IOptions<TransferOptions> options,
    TimeProvider time,
    ILogger<RecoveryShardGrain> logger) : Grain, IRecoveryShardGrain, IRemindable
{
    /// <summary>Most movements one shard lists at once; beyond it new movements are refused (back-pressure).</summary>
    public const int MaxInFlight = 100_000;

    /// <summary>Most movements one reminder tick hands to coordinators.</summary>
    public const int MaxRecoveriesPerTick = 1_000;

    /// <summary>How often removals that no listing has carried to storage yet are written on their own.</summary>
    public static readonly TimeSpan RemovalFlushInterval = TimeSpan.FromSeconds(5);

    private const string SweepReminder = "sweep";

    private readonly TransferOptions _options = options.Value;
    private GroupCommit _commit = null!;
    private Dictionary<string, DateTimeOffset> _inFlight = null!;
    private Dictionary<string, TransferRecord> _records = null!;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _inFlight = new Dictionary<string, DateTimeOffset>(state.State.InFlight, StringComparer.Ordinal);
        _records = new Dictionary<string, TransferRecord>(state.State.Records ?? [], StringComparer.Ordinal);
        _commit = new GroupCommit(WriteSnapshot, _options.RecoveryWriteDelay, time);
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

    public async Task<ListedTransfer> Track(TransferRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var transferId = record.Request.TransferId;
        if (_records.TryGetValue(transferId, out var listed))
        {
            // Listed already (a retry, or the same key with another request): the listing must be durable.
            await Durable();
            return new ListedTransfer(listed, Created: false);
        }

        if (_inFlight.Count >= MaxInFlight)
        {
            throw new InvalidOperationException($"Recovery shard {this.GetPrimaryKeyLong()} lists {_inFlight.Count} movements, the limit is {MaxInFlight}.");
        }

        // An id listed without a record came from an earlier version that died before writing
        // the record; recovery would drop it, so this record takes its place.
        _inFlight.TryAdd(transferId, time.GetUtcNow());
        _records[transferId] = record;
        await _commit.Persisted(_commit.Changed());
        return new ListedTransfer(record, Created: true);
    }

    public async Task<TransferRecord?> Find(string transferId)
    {
        if (!_records.TryGetValue(transferId, out var listed))
        {
            return null;
        }

        // Never hand out a listing that a failed write may not have stored.
        await Durable();
        return listed;
    }

    public async Task<TransferRecord?> Decide(string transferId, RejectionReason reason, DateTimeOffset notAfter)
    {
        if (!_records.TryGetValue(transferId, out var listed))
        {
            return null;
        }

        var decidedAt = time.GetUtcNow();
        if (listed.Status != TransferStatus.Pending || decidedAt > notAfter)
        {
            // Decided already, or the driver's lease has ended: a successor may be preparing now,
            // and must find either no decision or one made before its lease began.
            await Durable();
            return listed;
        }

        listed = listed with
        {
            Status = reason == RejectionReason.None ? TransferStatus.Committed : TransferStatus.Rejected,
            Reason = reason,
            DecidedAt = decidedAt,
        };
        _records[transferId] = listed;
        await _commit.Persisted(_commit.Changed());
        return listed;
    }

    /// <summary>Returns once every change made so far is in storage (at once when it already is).</summary>
    private Task Durable() => _commit.Persisted(_commit.Latest);

    public Task Untrack(string transferId)
    {
        if (_inFlight.Remove(transferId) | _records.Remove(transferId))
        {
            // Not written now: the next listing's write carries it, or the flush timer does. Until
            // then a restart only lists an ended movement once more, which recovery drops.
            _commit.Changed();
        }

        return Task.CompletedTask;
    }

    private Task FlushRemovals(CancellationToken cancellation) => Durable();

    public Task<IReadOnlyList<string>> List(int limit) =>
        Task.FromResult<IReadOnlyList<string>>(_inFlight.OrderBy(e => e.Value).Take(limit).Select(e => e.Key).ToArray());

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        var cutoff = time.GetUtcNow() - _options.RecoveryDueTime;
        var coordinator = GrainFactory.GetCoordinator();
        var due = _inFlight.Where(e => e.Value <= cutoff).OrderBy(e => e.Value).Take(MaxRecoveriesPerTick).Select(e => e.Key).ToArray();
        if (due.Length > 0)
        {
            var shard = this.GetPrimaryKeyLong();
            LogSweep(logger, shard, due.Length, _inFlight.Count);
        }

        foreach (var transferId in due)
        {
            // One-way: the coordinator claims the movement and finishes it, or untracks it if it has ended.
            coordinator.Recover(transferId).Ignore();
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// Writes a copy of the list: turns that interleave with a write (the grain is reentrant) change
    /// the live list, never the one a storage provider may still be serializing.
    /// </summary>
    private Task WriteSnapshot()
    {
        state.State = new RecoveryShardState
        {
            InFlight = new Dictionary<string, DateTimeOffset>(_inFlight, StringComparer.Ordinal),
            Records = new Dictionary<string, TransferRecord>(_records, StringComparer.Ordinal),
        };
        return state.WriteStateAsync();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovery shard {Shard}: handing {Due} of {Listed} listed movements to coordinators")]
    private static partial void LogSweep(ILogger logger, long shard, int due, int listed);
}
