using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using HdrHistogram;
using Microsoft.Extensions.Options;

namespace Transactor.Api.Events;

/// <summary>
/// This API process's view of the ledger's events: every silo's batches arrive here
/// (<see cref="ILedgerEventObserver"/>); each ended movement gets the next sequence number, is kept
/// in a ring of the last <see cref="RingCapacity"/> for resuming clients, and is offered to every
/// subscriber's bounded buffer. Also keeps what the metrics stream needs: each silo's latest load,
/// the latencies of the current second, and the busiest accounts. See docs/events.md.
/// </summary>
public sealed class TransferEventLog : ILedgerEventObserver
{
    /// <summary>Movements kept for clients that resume with <c>Last-Event-ID</c>.</summary>
    public const int RingCapacity = 10_000;

    /// <summary>Movements waiting for one subscriber; beyond this its oldest are dropped and it is told how many.</summary>
    public const int SubscriberCapacity = 1_024;

    /// <summary>Subscribers of <c>/events/transfers</c> at once; more are refused with 503.</summary>
    public const int MaxSubscribers = 256;

    /// <summary>The most movements a client may ask to be replayed on connecting (<c>backlog</c>).</summary>
    public const int MaxBacklog = 1_000;

    /// <summary>Accounts whose recent activity is counted for the busiest list; beyond this, new ones wait until old ones fade.</summary>
    public const int MaxTrackedAccounts = 10_000;

    private const long MaxLatencyMicros = 60_000_000;

    private readonly object _gate = new();
    private readonly TransferEvent[] _ring = new TransferEvent[RingCapacity];
    private readonly List<Subscription> _subscribers = [];
    private readonly Dictionary<string, (SiloLoad Load, long Dropped)> _silos = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _activity = new(StringComparer.Ordinal);
    private readonly JsonSerializerOptions _json;
    private LongHistogram _latencyMicros = NewHistogram();
    private long _next = 1;
    private long _received;

    public TransferEventLog(IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    {
        ArgumentNullException.ThrowIfNull(json);
        _json = json.Value.SerializerOptions;
    }

    /// <summary>Names this process's sequence: event ids are <c>{Instance}-{sequence}</c>, so an id from another process (or an earlier run of this one) is recognised.</summary>
    public string Instance { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));

    public Task OnEvents(LedgerEventBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (_gate)
        {
            _silos[batch.Silo] = (batch.Load, batch.Dropped);
            foreach (var movement in batch.Movements)
            {
                var entry = new TransferEvent(_next, movement.From, movement.To, null!);
                entry = entry with { Json = JsonSerializer.Serialize(TransferEventView.Of(entry.Sequence, batch.Silo, movement), _json) };
                _ring[_next % RingCapacity] = entry;
                _next++;
                _received++;
                _latencyMicros.RecordValue(Math.Clamp((long)(movement.LatencyMs * 1000), 1, MaxLatencyMicros));
                Count(movement.From);
                Count(movement.To);
                foreach (var subscriber in _subscribers)
                {
                    if (subscriber.Matches(entry))
                    {
                        subscriber.Buffer.Offer(entry);
                    }
                }
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>The event id of sequence number <paramref name="sequence"/>.</summary>
    public string EventId(long sequence) => string.Create(CultureInfo.InvariantCulture, $"{Instance}-{sequence}");

    /// <summary>
    /// Subscribes to movements (of <paramref name="account"/> only, when given). With
    /// <paramref name="lastEventId"/>, the subscription starts with every kept movement after it, and
    /// says when some of those are no longer kept; otherwise with the last <paramref name="backlog"/>.
    /// Null when <see cref="MaxSubscribers"/> are subscribed.
    /// </summary>
    public Subscription? Subscribe(string? account, string? lastEventId, int backlog)
    {
        lock (_gate)
        {
            if (_subscribers.Count >= MaxSubscribers)
            {
                return null;
            }

            var subscription = new Subscription(this, account);
            var oldest = Math.Max(1, _next - RingCapacity);
            var from = backlog > 0 ? oldest : _next;
            if (lastEventId is not null)
            {
                var known = TryParse(lastEventId, out var last) && last < _next;
                if (!known)
                {
                    subscription.Gap = new GapView("unknown_id", lastEventId, EventId(oldest), null);
                }
                else if (last + 1 < oldest)
                {
                    subscription.Gap = new GapView("too_old", lastEventId, EventId(oldest), oldest - last - 1);
                    from = oldest;
                }
                else
                {
                    from = last + 1;
                }
            }

            var replay = new List<TransferEvent>();
            for (var sequence = _next - 1; sequence >= from && sequence >= oldest; sequence--)
            {
                var entry = _ring[sequence % RingCapacity];
                if (subscription.Matches(entry))
                {
                    replay.Add(entry);
                    if (lastEventId is null && replay.Count >= backlog)
                    {
                        break;
                    }
                }
            }

            replay.Reverse();
            subscription.Replay = replay;
            _subscribers.Add(subscription);
            return subscription;
        }
    }

    private bool TryParse(string eventId, out long sequence)
    {
        sequence = 0;
        var dash = eventId.LastIndexOf('-');
        return dash > 0 && eventId.AsSpan(0, dash).SequenceEqual(Instance)
            && long.TryParse(eventId.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out sequence);
    }

    /// <summary>Subscribers now, and the most movements any one of them has waiting.</summary>
    public (int Count, int LargestBuffer) Subscribers()
    {
        lock (_gate)
        {
            return (_subscribers.Count, _subscribers.Count == 0 ? 0 : _subscribers.Max(s => s.Buffer.Count));
        }
    }

    /// <summary>The latencies recorded since the last call, and starts a new interval.</summary>
    internal LongHistogram TakeLatencies()
    {
        lock (_gate)
        {
            var taken = _latencyMicros;
            _latencyMicros = NewHistogram();
            return taken;
        }
    }

    /// <summary>Each silo's latest load and how many events it dropped, by silo address.</summary>
    internal Dictionary<string, (SiloLoad Load, long Dropped)> SiloLoads()
    {
        lock (_gate)
        {
            return new Dictionary<string, (SiloLoad, long)>(_silos, StringComparer.Ordinal);
        }
    }

    /// <summary>Forgets a silo that has left the cluster.</summary>
    internal void ForgetSilo(string silo)
    {
        lock (_gate)
        {
            _silos.Remove(silo);
        }
    }

    /// <summary>Movements received since this process started.</summary>
    public long Received
    {
        get
        {
            lock (_gate)
            {
                return _received;
            }
        }
    }

    /// <summary>The accounts in the most recent movements (counts fade by <paramref name="fade"/> per call), busiest first.</summary>
    internal IReadOnlyList<BusyAccountView> Busiest(int count, double fade)
    {
        lock (_gate)
        {
            var top = _activity.OrderByDescending(a => a.Value).Take(count)
                .Select(a => new BusyAccountView(a.Key, Math.Round(a.Value, 1))).ToArray();
            foreach (var (account, value) in _activity)
            {
                var faded = value * fade;
                if (faded < 0.05)
                {
                    _activity.Remove(account);
                }
                else
                {
                    _activity[account] = faded;
                }
            }

            return top;
        }
    }

    private void Count(string? account)
    {
        if (account is null)
        {
            return;
        }

        if (_activity.TryGetValue(account, out var value))
        {
            _activity[account] = value + 1;
        }
        else if (_activity.Count < MaxTrackedAccounts)
        {
            _activity[account] = 1;
        }
    }

    private void Remove(Subscription subscription)
    {
        lock (_gate)
        {
            _subscribers.Remove(subscription);
        }
    }

    private static LongHistogram NewHistogram() => new(MaxLatencyMicros, 3);

    /// <summary>A movement as kept: its sequence number, its accounts (for filters) and its JSON, made once for every subscriber.</summary>
    public sealed record TransferEvent(long Sequence, string? From, string? To, string Json);

    /// <summary>One subscriber of <c>/events/transfers</c>. Dispose it when the client leaves.</summary>
    public sealed class Subscription(TransferEventLog log, string? account) : IDisposable
    {
        public SubscriberBuffer<TransferEvent> Buffer { get; } = new(SubscriberCapacity);

        /// <summary>Kept movements to send before the buffer's, oldest first.</summary>
        public IReadOnlyList<TransferEvent> Replay { get; internal set; } = [];

        /// <summary>Set when movements after the client's last event id are no longer kept, or the id is not this stream's.</summary>
        public GapView? Gap { get; internal set; }

        public bool Matches(TransferEvent entry) => account is null || entry.From == account || entry.To == account;

        public void Dispose()
        {
            log.Remove(this);
            Buffer.Complete();
        }
    }
}

/// <summary>The <c>gap</c> event: movements after <see cref="After"/> cannot be replayed.</summary>
/// <param name="Reason"><c>too_old</c>: more movements ended since than are kept; <c>unknown_id</c>: the id is not of this API process's stream (it restarted, or another instance served it).</param>
/// <param name="Oldest">The oldest event id still kept.</param>
/// <param name="Lost">How many movements were lost, when known.</param>
public sealed record GapView(string Reason, string After, string Oldest, long? Lost);

/// <summary>The <c>ready</c> event, first on every connection: the stream's name, the first part of its event ids.</summary>
public sealed record ReadyView(string Stream);

/// <summary>The <c>missed</c> event: this many movements were dropped because the client read too slowly.</summary>
public sealed record MissedView(long Missed);

/// <summary>An account and its recent movements (a count that fades by half every few seconds).</summary>
public sealed record BusyAccountView(string Account, double Movements);

/// <summary>An ended movement as <c>/events/transfers</c> shows it. Amounts in minor units, latency in milliseconds.</summary>
public sealed record TransferEventView(
    long Sequence,
    string Id,
    string Kind,
    string? From,
    string? To,
    long Amount,
    string? Currency,
    string Status,
    string? Reason,
    double LatencyMs,
    string? TraceId,
    DateTimeOffset Time,
    string Silo,
    long? FromAvailable,
    long FromVersion,
    long? ToAvailable,
    long ToVersion)
{
    public static TransferEventView Of(long sequence, string silo, MovementEvent m) => new(
        sequence, m.TransferId, m.Kind.ToString().ToLowerInvariant(), m.From, m.To, m.AmountMinor, m.Currency,
        m.Status.ToString().ToLowerInvariant(), m.Reason, m.LatencyMs, m.TraceId, m.EndedAt, silo,
        m.FromAvailableMinor, m.FromVersion, m.ToAvailableMinor, m.ToVersion);
}
