using Orleans.Concurrency;

namespace Transactor;

/// <summary>
/// Receives the ledger's events: each silo sends every receiver a batch of the movements its
/// coordinators ended, with its load, about ten times a second (and at least once a second).
/// An API process is one receiver; it subscribes through <see cref="ILedgerEventHubGrain"/>.
/// </summary>
[Alias("Transactor.ILedgerEventObserver")]
public interface ILedgerEventObserver : IGrainObserver
{
    /// <summary>One silo's batch. One-way: a slow or gone receiver never holds a silo up.</summary>
    [Alias("OnEvents"), OneWay]
    Task OnEvents(LedgerEventBatch batch);
}

/// <summary>
/// Who receives the ledger's events (grain key 0). Receivers subscribe again every
/// <see cref="LedgerEvents.RenewEvery"/>; a subscription not renewed for <see cref="LedgerEvents.SubscriptionLifetime"/>
/// lapses, so a receiver that died without unsubscribing is forgotten, and one whose hub
/// activation was lost (the hub keeps nothing in storage) is known again within a renewal.
/// Silos read the list every <see cref="LedgerEvents.RefreshEvery"/> and send to each receiver
/// themselves: the hub is no relay, so it carries no event and is no bottleneck.
/// </summary>
[Alias("Transactor.ILedgerEventHubGrain")]
public interface ILedgerEventHubGrain : IGrainWithIntegerKey
{
    /// <summary>Subscribes (or renews) <paramref name="receiver"/>.</summary>
    [Alias("Subscribe")]
    Task Subscribe(ILedgerEventObserver receiver);

    /// <summary>Ends the subscription of <paramref name="receiver"/>.</summary>
    [Alias("Unsubscribe")]
    Task Unsubscribe(ILedgerEventObserver receiver);

    /// <summary>The receivers subscribed now, at most <see cref="LedgerEvents.MaxReceivers"/>.</summary>
    [Alias("Receivers")]
    Task<IReadOnlyList<ILedgerEventObserver>> Receivers();
}

/// <summary>Limits and timings of the ledger's events.</summary>
public static class LedgerEvents
{
    /// <summary>How many receivers (API processes) the hub keeps; more are refused.</summary>
    public const int MaxReceivers = 64;

    /// <summary>How often a receiver subscribes again.</summary>
    public static readonly TimeSpan RenewEvery = TimeSpan.FromSeconds(10);

    /// <summary>How long a subscription lasts without renewal.</summary>
    public static readonly TimeSpan SubscriptionLifetime = TimeSpan.FromSeconds(35);

    /// <summary>How often a silo reads the list of receivers.</summary>
    public static readonly TimeSpan RefreshEvery = TimeSpan.FromSeconds(2);

    /// <summary>The hub's grain.</summary>
    public static ILedgerEventHubGrain Hub(this IGrainFactory grains)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return grains.GetGrain<ILedgerEventHubGrain>(0);
    }
}

/// <summary>What one silo sends: the movements it ended since its last batch, and its load now.</summary>
/// <param name="Dropped">Movements this silo could not send since it started, because its outgoing buffer was full.</param>
/// <param name="FirstSequence">
/// The silo's sequence number of the first movement of the batch; the others follow it one by one.
/// A silo numbers what it sends from 1 when it starts, the same for every receiver, so every API
/// process can name a point in each silo's stream the same way (docs/events.md, Resuming on any instance).
/// 0 from a silo of an earlier release.
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.LedgerEventBatch")]
public sealed record LedgerEventBatch(
    [property: Id(0)] string Silo,
    [property: Id(1)] IReadOnlyList<MovementEvent> Movements,
    [property: Id(2)] SiloLoad Load,
    [property: Id(3)] long Dropped,
    [property: Id(4)] long FirstSequence = 0);

/// <summary>A movement that ended (committed or rejected), as the coordinator that ended it saw it.</summary>
/// <param name="Reason">The rejection reason's code (<c>insufficient_funds</c>, ...), or null when committed.</param>
/// <param name="LatencyMs">From the coordinator's first sight of the request to the end, in milliseconds.</param>
/// <param name="TraceId">The W3C trace id of the request, when traces are recorded.</param>
/// <param name="FromAvailableMinor">The debited account's available balance right after, when known.</param>
/// <param name="FromVersion">The debited account's version right after (0 when unknown); a later version is a later state.</param>
[GenerateSerializer, Immutable, Alias("Transactor.MovementEvent")]
public sealed record MovementEvent(
    [property: Id(0)] string TransferId,
    [property: Id(1)] TransferKind Kind,
    [property: Id(2)] string? From,
    [property: Id(3)] string? To,
    [property: Id(4)] long AmountMinor,
    [property: Id(5)] string? Currency,
    [property: Id(6)] TransferStatus Status,
    [property: Id(7)] string? Reason,
    [property: Id(8)] double LatencyMs,
    [property: Id(9)] string? TraceId,
    [property: Id(10)] DateTimeOffset EndedAt,
    [property: Id(11)] long? FromAvailableMinor,
    [property: Id(12)] long FromVersion,
    [property: Id(13)] long? ToAvailableMinor,
    [property: Id(14)] long ToVersion);

/// <summary>A silo's load: counters since it started, and its admission (docs/transfers.md, Admission) now.</summary>
/// <param name="Committed">Movements its coordinators committed since the silo started.</param>
/// <param name="Rejected">Movements its coordinators rejected since the silo started.</param>
/// <param name="Refused">Movements refused because its admission queue was full (HTTP 429), since it started.</param>
/// <param name="InFlight">Movements holding one of its places now.</param>
/// <param name="Queued">Movements waiting for a place now.</param>
/// <param name="Places">How many places it has.</param>
/// <param name="QueueLimit">How many may wait.</param>
/// <param name="ChaosFaults">
/// With chaos mode on for this silo (docs/overload.md), the faults it injected since it started;
/// null when chaos mode is off here.
/// </param>
/// <param name="ChaosArmed">
/// With chaos mode on for this silo: whether it may inject faults now (false while its
/// <c>ArmedFile</c> is named and absent).
/// </param>
[GenerateSerializer, Immutable, Alias("Transactor.SiloLoad")]
public sealed record SiloLoad(
    [property: Id(0)] long Committed,
    [property: Id(1)] long Rejected,
    [property: Id(2)] long Refused,
    [property: Id(3)] long InFlight,
    [property: Id(4)] long Queued,
    [property: Id(5)] int Places,
    [property: Id(6)] int QueueLimit,
    [property: Id(7)] DateTimeOffset At,
    [property: Id(8)] long? ChaosFaults = null,
    [property: Id(9)] bool ChaosArmed = false);
