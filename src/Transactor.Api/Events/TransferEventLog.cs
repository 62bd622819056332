using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using HdrHistogram;
using Microsoft.Extensions.Options;

namespace Transactor.Api.Events;

/// <summary>
/// This API process's view of the ledger's events: every silo's batches arrive here
/// (<see cref="ILedgerEventObserver"/>); each ended movement gets the next sequence number of this
/// process and an event id that is a cursor over the silos' own sequences (valid on every API
/// process, <see cref="Cursor"/>), is kept in a ring of the last <see cref="RingCapacity"/> for
/// resuming clients, and is offered to every subscriber's bounded buffer. Also keeps what the metrics stream needs: each silo's latest load,
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

    /// <summary>
    /// Movements remembered to drop a second event of the same end: when two drivers of one movement
    /// both complete it (a takeover racing the first driver), each silo sends it. Older ones are forgotten.
    /// </summary>
    public const int DedupeCapacity = 2 * RingCapacity;

    /// <summary>Silos named in an event id; the movements of a silo beyond them are replayed in full on a resume (more, never fewer).</summary>
    public const int MaxCursorSilos = 64;

    /// <summary>How long movements of a silo may arrive ahead of a missing batch before the missing one is given up as lost.</summary>
    public static readonly TimeSpan HoleTimeout = TimeSpan.FromSeconds(2);

    private const long MaxLatencyMicros = 60_000_000;

    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    /// <summary>Ranges of a silo's sequence received ahead of a missing batch, at most; beyond, the hole is given up.</summary>
    private const int MaxAheadRanges = 64;

    private readonly object _gate = new();
    private readonly TransferEvent[] _ring = new TransferEvent[RingCapacity];
    private readonly List<Subscription> _subscribers = [];
    private readonly Dictionary<string, SiloFigures> _silos = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _activity = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SiloStream> _streams = new(StringComparer.Ordinal);
    private readonly List<SiloStream> _cursorSilos = [];
    private readonly System.Text.StringBuilder _cursor = new();
    private readonly TimeProvider _time;
    private readonly JsonSerializerOptions _json;
    private readonly HashSet<(string TransferId, TransferStatus Status)> _seen = new(DedupeCapacity);
    private readonly Queue<(string TransferId, TransferStatus Status)> _seenOrder = new(DedupeCapacity);
    private LongHistogram _latencyMicros = NewHistogram();
    private long _next = 1;
    private long _received;
    private long _duplicates;

    public TransferEventLog(IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        _json = json.Value.SerializerOptions;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Names this process's stream (the <c>ready</c> event); the <c>sequence</c> of a movement is this process's order.</summary>
    public string Instance { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));

    public Task OnEvents(LedgerEventBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (_gate)
        {
            var figures = _silos.GetValueOrDefault(batch.Silo);
            if (figures.Load is null || batch.Load.At >= figures.Load.At)
            {
                // A batch that arrives after a later one (one-way calls are not ordered) leaves the later load.
                figures = figures with { Load = batch.Load, Dropped = batch.Dropped };
            }

            _silos[batch.Silo] = figures;
            if (batch.Movements.Count == 0)
            {
                return Task.CompletedTask;
            }

            var silo = Stream(batch.Silo);
            // A silo of an earlier release numbers nothing: its movements are numbered on arrival (valid here only).
            var first = batch.FirstSequence > 0 ? batch.FirstSequence : Math.Max(silo.Head, silo.AheadEnd) + 1;
            silo.Arrived(first, _time.GetTimestamp());
            var inOrder = first == silo.Head + 1;
            for (var i = 0; i < batch.Movements.Count; i++)
            {
                var movement = batch.Movements[i];
                var siloSequence = first + i;
                if (inOrder)
                {
                    // Every movement of this silo up to this one has arrived: the cursor moves with it
                    // (and over what arrived ahead of it, once this one closes the hole).
                    silo.Head = Math.Max(silo.Head, siloSequence);
                    silo.Merge();
                }

                if (!FirstEnd(movement))
                {
                    // This silo counted the movement in its load too: the metrics take it off again.
                    _duplicates++;
                    figures = movement.Status == TransferStatus.Committed
                        ? figures with { DuplicateCommitted = figures.DuplicateCommitted + 1 }
                        : figures with { DuplicateRejected = figures.DuplicateRejected + 1 };
                    _silos[batch.Silo] = figures;
                    continue;
                }

                // JSON and event id made once here, shared by every subscriber.
                var sequence = _next++;
                var json = JsonSerializer.Serialize(TransferEventView.Of(sequence, batch.Silo, movement), _json);
                var entry = new TransferEvent(sequence, Cursor(), movement.From, movement.To, json) { Silo = silo, SiloSequence = siloSequence };
                var slot = sequence % RingCapacity;
                if (_ring[slot] is { Silo: { } evicted } old)
                {
                    evicted.Evicted = Math.Max(evicted.Evicted, old.SiloSequence);
                    if (--evicted.Kept == 0 && evicted.Gone)
                    {
                        // A silo that left, with nothing kept to replay: ids stop naming it.
                        _streams.Remove(evicted.Name);
                        _cursorSilos.Remove(evicted);
                    }
                }

                _ring[slot] = entry;
                silo.Kept++;
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

            if (!inOrder)
            {
                silo.Ahead(first, first + batch.Movements.Count - 1);
            }

            silo.Advance(_time, HoleTimeout);
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// The event id of the movement just received: for every silo this process has heard from, the
    /// silo's sequence up to which all its movements have arrived (<c>{silo}.{sequence}</c>, joined by
    /// <c>-</c>). Every API process receives the same numbers from the silos, so any of them can tell
    /// which of its kept movements come after an id, whichever process made it.
    /// </summary>
    private string Cursor()
    {
        _cursor.Clear();
        foreach (var silo in _cursorSilos)
        {
            if (silo.Head > 0)
            {
                if (_cursor.Length > 0)
                {
                    _cursor.Append('-');
                }

                _cursor.Append(silo.Tag).Append('.').Append(silo.Head);
            }
        }

        return _cursor.ToString();
    }

    private SiloStream Stream(string silo)
    {
        if (!_streams.TryGetValue(silo, out var stream))
        {
            stream = new SiloStream(silo, SiloTag(silo));
            _streams[silo] = stream;
            if (_cursorSilos.Count < MaxCursorSilos)
            {
                _cursorSilos.Add(stream);
            }
        }

        stream.Gone = false;
        return stream;
    }

    /// <summary>A short, stable name of a silo (its address with its generation): FNV-1a, the same in every process.</summary>
    internal static string SiloTag(string silo)
    {
        var hash = 2166136261u;
        foreach (var c in silo)
        {
            hash = unchecked((hash ^ c) * 16777619u);
        }

        return hash.ToString("x8", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// False when this end of the movement was seen already (among the last <see cref="DedupeCapacity"/>):
    /// a movement ends once, but two drivers that both complete it each publish it, from their own silos.
    /// </summary>
    private bool FirstEnd(MovementEvent movement)
    {
        var key = (movement.TransferId, movement.Status);
        if (!_seen.Add(key))
        {
            return false;
        }

        _seenOrder.Enqueue(key);
        if (_seenOrder.Count > DedupeCapacity)
        {
            _seen.Remove(_seenOrder.Dequeue());
        }

        return true;
    }

    /// <summary>Second events of a movement's end that were dropped (two drivers completed it), and how many ends are remembered to tell.</summary>
    internal (long Dropped, int Remembered) Duplicates()
    {
        lock (_gate)
        {
            return (_duplicates, _seen.Count);
        }
    }

    /// <summary>The event id of this process's movement <paramref name="sequence"/>, while it is kept; null otherwise.</summary>
    public string? EventId(long sequence)
    {
        lock (_gate)
        {
            return sequence >= 1 && sequence < _next && _ring[sequence % RingCapacity] is { } entry && entry.Sequence == sequence ? entry.Id : null;
        }
    }

    /// <summary>
    /// Subscribes to movements (of <paramref name="account"/> only, when given). With
    /// <paramref name="lastEventId"/> (made by this process or another), the subscription starts with
    /// every kept movement after it, and says when some of those are no longer kept; otherwise with the
    /// last <paramref name="backlog"/>. Null when <see cref="MaxSubscribers"/> are subscribed.
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
            var replay = new List<TransferEvent>();
            if (lastEventId is not null)
            {
                if (!TryParseCursor(lastEventId, out var cursor) || !_streams.Values.Any(s => cursor.ContainsKey(s.Tag)))
                {
                    subscription.Gap = new GapView("unknown_id", lastEventId, OldestId(oldest), null);
                }
                else
                {
                    if (Lost(cursor) is > 0 and var lost)
                    {
                        subscription.Gap = new GapView("too_old", lastEventId, OldestId(oldest), lost);
                    }

                    // Every kept movement the cursor does not cover: of a silo it names, beyond its sequence;
                    // of a silo it does not name, all (the client cannot have had them from where it was).
                    for (var sequence = oldest; sequence < _next; sequence++)
                    {
                        var entry = _ring[sequence % RingCapacity];
                        var covered = entry.Silo is { } silo && cursor.TryGetValue(silo.Tag, out var upTo) && entry.SiloSequence <= upTo;
                        if (!covered && subscription.Matches(entry))
                        {
                            replay.Add(entry);
                        }
                    }
                }
            }
            else if (backlog > 0)
            {
                for (var sequence = _next - 1; sequence >= oldest; sequence--)
                {
                    var entry = _ring[sequence % RingCapacity];
                    if (subscription.Matches(entry))
                    {
                        replay.Add(entry);
                        if (replay.Count >= backlog)
                        {
                            break;
                        }
                    }
                }

                replay.Reverse();
            }

            subscription.Replay = replay;
            subscription.Backlog = backlog;
            _subscribers.Add(subscription);
            return subscription;
        }
    }

    /// <summary>
    /// How many movements after <paramref name="cursor"/> this process cannot replay: those of a named
    /// silo that it began to receive only after the cursor's point, and those that left its ring.
    /// </summary>
    private long Lost(Dictionary<string, long> cursor)
    {
        var lost = 0L;
        foreach (var silo in _streams.Values)
        {
            if (silo.First == 0 || !cursor.TryGetValue(silo.Tag, out var upTo))
            {
                continue;
            }

            var before = silo.First - 1;
            if (before > upTo)
            {
                lost += before - upTo;
            }

            var from = Math.Max(upTo, before);
            if (silo.Evicted > from)
            {
                lost += silo.Evicted - from;
            }
        }

        return lost;
    }

    private string OldestId(long oldest) => oldest < _next && _ring[oldest % RingCapacity] is { } entry ? entry.Id : "";

    /// <summary>Reads an event id: <c>{silo}.{sequence}</c> pairs joined by <c>-</c>, at most <see cref="MaxCursorSilos"/>.</summary>
    internal static bool TryParseCursor(string eventId, out Dictionary<string, long> cursor)
    {
        cursor = new Dictionary<string, long>(StringComparer.Ordinal);
        if (eventId.Length > MaxCursorSilos * 30)
        {
            return false;
        }

        foreach (var part in eventId.Split('-'))
        {
            if (part.IndexOf('.', StringComparison.Ordinal) != 8 || part.AsSpan(0, 8).IndexOfAnyExcept(LowerHex) >= 0
                || !long.TryParse(part.AsSpan(9), NumberStyles.None, CultureInfo.InvariantCulture, out var sequence)
                || !cursor.TryAdd(part[..8], sequence))
            {
                return false;
            }
        }

        return cursor.Count > 0;
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

    /// <summary>Each silo's latest load, how many events it dropped, and how many of its ends were second ends of a movement, by silo address.</summary>
    internal Dictionary<string, SiloFigures> SiloLoads()
    {
        lock (_gate)
        {
            return new Dictionary<string, SiloFigures>(_silos, StringComparer.Ordinal);
        }
    }

    /// <summary>Forgets a silo that has left the cluster.</summary>
    internal void ForgetSilo(string silo)
    {
        lock (_gate)
        {
            _silos.Remove(silo);
            if (_streams.TryGetValue(silo, out var stream))
            {
                stream.Gone = true;
                if (stream.Kept == 0)
                {
                    _streams.Remove(silo);
                    _cursorSilos.Remove(stream);
                }
            }
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

    /// <summary>A movement as kept: its sequence number and event id, its accounts (for filters) and its JSON, made once for every subscriber.</summary>
    public sealed record TransferEvent(long Sequence, string Id, string? From, string? To, string Json)
    {
        /// <summary>The silo that sent it.</summary>
        internal SiloStream? Silo { get; init; }

        /// <summary>Its number in that silo's stream.</summary>
        internal long SiloSequence { get; init; }
    }

    /// <summary>One silo's stream of movements as this process received it.</summary>
    internal sealed class SiloStream(string name, string tag)
    {
        private readonly SortedList<long, long> _ahead = [];
        private long _holeSince;

        /// <summary>The silo's address, as it sends it.</summary>
        public string Name { get; } = name;

        /// <summary>The silo's short name in event ids.</summary>
        public string Tag { get; } = tag;

        /// <summary>The first of its sequence numbers this process received (0: none yet).</summary>
        public long First { get; private set; }

        /// <summary>Every movement of this silo from <see cref="First"/> up to this one has arrived here (or was given up as lost on the way).</summary>
        public long Head { get; set; }

        /// <summary>The highest of its numbers received beyond a missing batch (0 when none is missing).</summary>
        public long AheadEnd => _ahead.Count == 0 ? 0 : _ahead.Values.Max();

        /// <summary>The highest of its numbers that left the ring.</summary>
        public long Evicted { get; set; }

        /// <summary>Its movements in the ring now.</summary>
        public int Kept { get; set; }

        /// <summary>It left the cluster.</summary>
        public bool Gone { get; set; }

        /// <summary>A batch starting at <paramref name="first"/> arrived: the first one sets where this process's view of the silo starts.</summary>
        public void Arrived(long first, long now)
        {
            if (First == 0)
            {
                First = first;
                Head = first - 1;
            }

            if (first > Head + 1 && _holeSince == 0)
            {
                _holeSince = now;
            }
        }

        /// <summary>Movements <paramref name="from"/>-<paramref name="to"/> arrived before one that comes earlier.</summary>
        public void Ahead(long from, long to)
        {
            if (to > Head)
            {
                _ahead[Math.Max(from, Head + 1)] = to;
            }
        }

        /// <summary>Moves <see cref="Head"/> over ranges received ahead that now follow it.</summary>
        public void Merge()
        {
            while (_ahead.Count > 0 && _ahead.Keys[0] <= Head + 1)
            {
                Head = Math.Max(Head, _ahead.Values[0]);
                _ahead.RemoveAt(0);
            }
        }

        /// <summary>Merges, and gives a hole up as lost after <paramref name="timeout"/> (or past <see cref="MaxAheadRanges"/> ranges).</summary>
        public void Advance(TimeProvider time, TimeSpan timeout)
        {
            Merge();
            if (_ahead.Count == 0)
            {
                _holeSince = 0;
            }
            else if (_ahead.Count > MaxAheadRanges || time.GetElapsedTime(_holeSince) >= timeout)
            {
                Head = AheadEnd;
                _ahead.Clear();
                _holeSince = 0;
            }
        }
    }

    /// <summary>One subscriber of <c>/events/transfers</c>. Dispose it when the client leaves.</summary>
    public sealed class Subscription(TransferEventLog log, string? account) : IDisposable
    {
        public SubscriberBuffer<TransferEvent> Buffer { get; } = new(SubscriberCapacity);

        /// <summary>Kept movements to send before the buffer's, oldest first.</summary>
        public IReadOnlyList<TransferEvent> Replay { get; internal set; } = [];

        /// <summary>Set when movements after the client's last event id are no longer kept, or the id is not this stream's.</summary>
        public GapView? Gap { get; internal set; }

        /// <summary>How many recent movements the client asked for (<c>backlog</c>).</summary>
        public int Backlog { get; internal set; }

        public bool Matches(TransferEvent entry) => account is null || entry.From == account || entry.To == account;

        private int _disposed;

        /// <summary>Frees the subscriber's place; safe to call more than once (the stream ends it, and so does the request's end).</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                log.Remove(this);
                Buffer.Complete();
            }
        }
    }
}

/// <summary>
/// What this API process knows of one silo: its latest load (its counters count every end its
/// coordinators made), how many events it dropped, and how many of the ends it sent here were second
/// ends of a movement that another driver had ended and sent first (<see cref="TransferEventLog.DedupeCapacity"/>),
/// by outcome. <see cref="Committed"/> and <see cref="Rejected"/> count each movement once.
/// </summary>
internal readonly record struct SiloFigures(SiloLoad? Load, long Dropped, long DuplicateCommitted, long DuplicateRejected)
{
    /// <summary>Movements this silo committed, less those another silo (or an earlier driver here) had sent first.</summary>
    public long Committed => (Load?.Committed ?? 0) - DuplicateCommitted;

    /// <summary>Movements this silo rejected, less second ends.</summary>
    public long Rejected => (Load?.Rejected ?? 0) - DuplicateRejected;
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

/// <summary>The movements a sampled stream (<c>max_per_second</c>) left out before its next <c>transfer</c>.</summary>
public sealed record SkippedView(long Skipped);

/// <summary>The last event of a stream whose key was revoked: <c>api_key_revoked</c>.</summary>
public sealed record RevokedView(string Code);

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
