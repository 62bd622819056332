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
    public const int MaxInFlight = 1_000_000;

    /// <summary>Most movements one reminder tick hands to coordinators.</summary>
    public const int MaxRecoveriesPerTick = 1_000;

    /// <summary>How often removals that no listing has carried to storage yet are written on their own.</summary>
    public static readonly TimeSpan RemovalFlushInterval = TimeSpan.FromSeconds(5);

    private const string SweepReminder = "sweep";

    private readonly TransferOptions _options = options.Value;
    private GroupCommit _commit = null!;
    private Dictionary<string, DateTimeOffset> _inFlight = null!;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _inFlight = new Dictionary<string, DateTimeOffset>(state.State.InFlight, StringComparer.Ordinal);
        _commit = new GroupCommit(WriteSnapshot);
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

    public async Task Track(string transferId)
    {
        var inFlight = _inFlight;
        if (!inFlight.ContainsKey(transferId))
        {
            if (inFlight.Count >= MaxInFlight)
            {
                throw new InvalidOperationException($"Recovery shard {this.GetPrimaryKeyLong()} lists {inFlight.Count} movements, the limit is {MaxInFlight}.");
            }

            inFlight[transferId] = time.GetUtcNow();
            await _commit.Persisted(_commit.Changed());
            return;
        }

        // Listed already (a retry): still wait until the listing is durable.
        await _commit.Persisted(_commit.Latest);
    }

    public Task Untrack(string transferId)
    {
        if (_inFlight.Remove(transferId))
        {
            // Not written now: the next listing's write carries it, or the flush timer does. Until
            // then a restart only lists an ended movement once more, which recovery drops.
            _commit.Changed();
        }

        return Task.CompletedTask;
    }

    private Task FlushRemovals(CancellationToken cancellation) =>
        _commit.Dirty ? _commit.Persisted(_commit.Latest) : Task.CompletedTask;

    public Task<IReadOnlyList<string>> List(int limit) =>
        Task.FromResult<IReadOnlyList<string>>(_inFlight.OrderBy(e => e.Value).Take(limit).Select(e => e.Key).ToArray());

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        var cutoff = time.GetUtcNow() - _options.RecoveryDueTime;
        var coordinator = GrainFactory.GetGrain<ITransferCoordinatorGrain>(0);
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
        state.State = new RecoveryShardState { InFlight = new Dictionary<string, DateTimeOffset>(_inFlight, StringComparer.Ordinal) };
        return state.WriteStateAsync();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovery shard {Shard}: handing {Due} of {Listed} listed movements to coordinators")]
    private static partial void LogSweep(ILogger logger, long shard, int due, int listed);
}
