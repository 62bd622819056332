using System.Globalization;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Transactor.Api.Http;
using Transactor.Api.Security;

namespace Transactor.Api.Events;

/// <summary>The ledger's events as Server-Sent Events: ended movements, and a metrics snapshot every second. See docs/events.md.</summary>
public static class EventsApi
{
    /// <summary>How long a browser's <c>EventSource</c> waits before it reconnects after a lost connection.</summary>
    private static readonly TimeSpan Reconnect = TimeSpan.FromSeconds(2);

    /// <summary>The highest <c>max_per_second</c> a sampled stream may ask for.</summary>
    public const int MaxSampleRate = 1_000;

    /// <summary>
    /// A stream of every movement sends at most once in this time: under load each send (and each wake
    /// of the subscriber) carries many movements instead of one, which is what several subscribers cost
    /// the ledger's process (a wake, a flush and a socket write per movement and subscriber). When
    /// movements are rare, each goes out at once.
    /// </summary>
    public static readonly TimeSpan SendInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>A sampled stream sends at most this many times a second (fewer when it asks for fewer events).</summary>
    private const int SampleTicksPerSecond = 4;

    public static IEndpointRouteBuilder MapEventsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/events").WithTags("Events");
        group.MapGet("/transfers", Transfers).RequireAuthorization(Roles.AnyKeyPolicy)
            .WithSummary("Every movement as it ends (SSE); ?account= to follow one account (a client key: one it owns), Last-Event-ID to resume, ?backlog= for recent ones, ?max_per_second= for a sample")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/metrics", Metrics).RequireAuthorization(Roles.AdminPolicy)
            .WithSummary("A snapshot of throughput, latency, pressure, silos and runs every second, and every change of a run (SSE)")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    internal static async Task<IResult> Transfers(
        HttpContext context, TransferEventLog log, AccountAccess access, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, string? account, string? backlog,
        [Microsoft.AspNetCore.Mvc.FromQuery(Name = "max_per_second")] string? maxPerSecond)
    {
        if (account is not null && !Ids.IsValidAccountId(account))
        {
            return Problems.InvalidField("account", $"Account ids are 1-{Ids.MaxAccountIdLength} characters of letters, digits, '-', '_' and '.'.");
        }

        var replay = 0;
        if (!string.IsNullOrEmpty(backlog) && (!int.TryParse(backlog, NumberStyles.None, CultureInfo.InvariantCulture, out replay) || replay > TransferEventLog.MaxBacklog))
        {
            return Problems.InvalidField("backlog", $"The backlog is a whole number from 0 to {TransferEventLog.MaxBacklog}.");
        }

        Sample? sample = null;
        if (!string.IsNullOrEmpty(maxPerSecond))
        {
            if (!int.TryParse(maxPerSecond, NumberStyles.None, CultureInfo.InvariantCulture, out var rate) || rate is < 1 or > MaxSampleRate)
            {
                return Problems.InvalidField("max_per_second", $"The most movements a second is a whole number from 1 to {MaxSampleRate}.");
            }

            sample = new Sample(rate);
        }

        // A client key follows one account it owns, and reads of the other party what GET /transfers/{id} shows it: not its balance.
        string? redactFor = null;
        if (!context.User.IsAdmin())
        {
            if (account is null)
            {
                return Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "A client key follows one of its own accounts.",
                    "Add ?account=<id> naming an account this key owns; the stream of every movement needs an admin key.");
            }

            if (await access.RequireOwner(context, account) is { } notOwner)
            {
                return notOwner;
            }

            redactFor = account;
            if (context.RequestServices.GetRequiredService<ClientStreams>().TryOpen(context.User.KeyId()!) is not { } place)
            {
                return Problems.Create(StatusCodes.Status429TooManyRequests, "too_many_streams", "Too many open event streams for this API key.",
                    $"A client key may have at most {ClientStreams.MaxPerKey} event streams open on one API instance; close one first.");
            }

            // Given back when the request ends, however it ends.
            context.Response.RegisterForDispose(place);
        }

        var lastEventId = context.Request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } header ? header : null;
        var subscription = log.Subscribe(account, lastEventId, replay);
        if (subscription is null)
        {
            return TooManySubscribers(TransferEventLog.MaxSubscribers);
        }

        // The place is taken now, before the response starts: it is freed when the request ends,
        // whatever happens to the response (the stream frees it sooner when it ends normally).
        context.Response.RegisterForDispose(subscription);
        var body = new CoalescingResponseStream(context.Response.BodyWriter);
        context.Response.Body = body;
        return TypedResults.ServerSentEvents(StreamTransfers(log, subscription, body, json.Value.SerializerOptions, redactFor, sample, KeyWatch.Start(context)));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamTransfers(
        TransferEventLog log, TransferEventLog.Subscription subscription, CoalescingResponseStream body, JsonSerializerOptions json, string? redactFor, Sample? sample, KeyWatch watch)
    {
        using (subscription)
        {
            // First, and at once: the response starts (its headers reach the client) before any movement ends.
            yield return new SseItem<string>(JsonSerializer.Serialize(new ReadyView(log.Instance), json), "ready") { ReconnectionInterval = Reconnect };
            if (subscription.Gap is { } gap)
            {
                // How many movements were lost counts every account's: not for a client key's eyes.
                gap = redactFor is null ? gap : gap with { Lost = null };
                yield return new SseItem<string>(JsonSerializer.Serialize(gap, json), "gap") { ReconnectionInterval = Reconnect };
            }

            // Each turn: what is at hand goes out in one send, then the stream waits for more and for
            // its next send's turn (the first after a quiet time at once).
            Drain drain = sample is null ? new EveryMovement(json, redactFor) : new Sampled(sample, json, redactFor);
            foreach (var item in drain.Replay(subscription))
            {
                yield return item;
            }

            var pace = new Pace(drain.Interval);
            while (await SendThenWait(body, subscription.Buffer.Reader, watch) && await pace.Turn(watch))
            {
                foreach (var item in drain.Take(subscription.Buffer))
                {
                    yield return item;
                }
            }

            if (watch.Revoked)
            {
                yield return Revoked(json);
            }
        }
    }

    /// <summary>How a stream of movements takes what ended: every movement (<see cref="EveryMovement"/>) or a sample (<see cref="Sampled"/>).</summary>
    private abstract class Drain(JsonSerializerOptions json, string? redactFor)
    {
        /// <summary>The shortest time between two sends.</summary>
        public abstract TimeSpan Interval { get; }

        /// <summary>The kept movements to send first (<c>backlog</c>, or a resume's).</summary>
        public abstract IEnumerable<SseItem<string>> Replay(TransferEventLog.Subscription subscription);

        /// <summary>One send's events: taken from what ended since the last.</summary>
        public abstract IEnumerable<SseItem<string>> Take(SubscriberBuffer<TransferEventLog.TransferEvent> buffer);

        protected JsonSerializerOptions Json => json;

        protected SseItem<string> Item(TransferEventLog.TransferEvent entry) =>
            new(redactFor is null ? entry.Json : Redact(entry, redactFor), "transfer") { EventId = entry.Id };
    }

    /// <summary>Every movement, at most one send per <see cref="SendInterval"/>; what the buffer dropped is told as <c>missed</c>.</summary>
    private sealed class EveryMovement(JsonSerializerOptions json, string? redactFor) : Drain(json, redactFor)
    {
        public override TimeSpan Interval => SendInterval;

        public override IEnumerable<SseItem<string>> Replay(TransferEventLog.Subscription subscription) => subscription.Replay.Select(Item);

        public override IEnumerable<SseItem<string>> Take(SubscriberBuffer<TransferEventLog.TransferEvent> buffer)
        {
            while (buffer.Reader.TryRead(out var entry))
            {
                // Dropped while this client fell behind: it hears how many before the next one it gets.
                if (buffer.TakeMissed() is > 0 and var missed)
                {
                    yield return new SseItem<string>(JsonSerializer.Serialize(new MissedView(missed), Json), "missed");
                }

                yield return Item(entry);
            }
        }
    }

    /// <summary>
    /// A sample: each send holds the newest of what ended since the last, up to the send's quota, and
    /// counts the rest (and what the buffer dropped) as <c>skipped</c>.
    /// </summary>
    private sealed class Sampled(Sample sample, JsonSerializerOptions json, string? redactFor) : Drain(json, redactFor)
    {
        private readonly Queue<TransferEventLog.TransferEvent> _newest = new(sample.MostPerSend);

        public override TimeSpan Interval => sample.Interval;

        public override IEnumerable<SseItem<string>> Replay(TransferEventLog.Subscription subscription)
        {
            // The replay is sent as asked (backlog), but a resume's may hold thousands: only its newest.
            var replay = subscription.Replay;
            var keep = Math.Max(sample.MostPerSend, subscription.Backlog);
            if (replay.Count > keep)
            {
                yield return Skipped(replay.Count - keep);
            }

            for (var i = Math.Max(0, replay.Count - keep); i < replay.Count; i++)
            {
                yield return Item(replay[i]);
            }
        }

        public override IEnumerable<SseItem<string>> Take(SubscriberBuffer<TransferEventLog.TransferEvent> buffer)
        {
            var quota = sample.NextQuota();
            var skipped = buffer.TakeMissed();
            while (buffer.Reader.TryRead(out var entry))
            {
                if (_newest.Count == quota)
                {
                    _newest.Dequeue();
                    skipped++;
                }

                _newest.Enqueue(entry);
            }

            if (skipped > 0)
            {
                yield return Skipped(skipped);
            }

            while (_newest.TryDequeue(out var entry))
            {
                yield return Item(entry);
            }
        }

        private SseItem<string> Skipped(long count) => new(JsonSerializer.Serialize(new SkippedView(count), Json), "skipped");
    }

    /// <summary>Sends what was written, then waits for more: false when there will be none (the key was revoked).</summary>
    private static async ValueTask<bool> SendThenWait<T>(CoalescingResponseStream? body, System.Threading.Channels.ChannelReader<T> reader, KeyWatch watch)
    {
        try
        {
            if (body is not null)
            {
                await body.SendAsync(watch.Token);
            }

            return await reader.WaitToReadAsync(watch.Token);
        }
        catch (OperationCanceledException) when (watch.Revoked)
        {
            return false;
        }
    }

    /// <summary>Waits <paramref name="interval"/>: false when the key was revoked meanwhile.</summary>
    private static async ValueTask<bool> Tick(TimeSpan interval, KeyWatch watch)
    {
        try
        {
            await Task.Delay(interval, watch.Token);
            return true;
        }
        catch (OperationCanceledException) when (watch.Revoked)
        {
            return false;
        }
    }

    /// <summary>Spaces a stream's sends at least <c>interval</c> apart: the first one after a quiet time goes at once.</summary>
    private sealed class Pace(TimeSpan interval)
    {
        private long _last;

        /// <summary>Waits until the next send may go: false when the key was revoked meanwhile.</summary>
        public async ValueTask<bool> Turn(KeyWatch watch)
        {
            var wait = interval - System.Diagnostics.Stopwatch.GetElapsedTime(_last);
            if (_last != 0 && wait > TimeSpan.Zero && !await Tick(wait, watch))
            {
                return false;
            }

            _last = System.Diagnostics.Stopwatch.GetTimestamp();
            return true;
        }
    }

    /// <summary>
    /// A sampled stream's pace: sends at least <see cref="Interval"/> apart, up to 4 a second, whose
    /// quotas add up to <c>perSecond</c> over any that many consecutive sends (so at most
    /// <c>perSecond</c> movements in any second, and exactly that many when they are there to send).
    /// </summary>
    internal sealed class Sample(int perSecond)
    {
        private readonly int _sends = Math.Min(perSecond, SampleTicksPerSecond);
        private int _next;

        public TimeSpan Interval => TimeSpan.FromSeconds(1.0 / _sends);

        /// <summary>The largest quota of a send.</summary>
        public int MostPerSend => (perSecond + _sends - 1) / _sends;

        /// <summary>The next send's quota (at least 1): the remainder of perSecond / sends spread over the sends.</summary>
        public int NextQuota()
        {
            var k = _next;
            _next = (_next + 1) % _sends;
            return ((k + 1) * perSecond / _sends) - (k * perSecond / _sends);
        }
    }

    private static SseItem<string> Revoked(JsonSerializerOptions json) =>
        new(JsonSerializer.Serialize(new RevokedView("api_key_revoked"), json), "revoked");

    /// <summary>
    /// The event as the owner of <paramref name="account"/> reads it: the other account's balance and
    /// version left out (null and 0, as when unknown), and what says something about the cluster rather
    /// than the movement (the silo, the position in this instance's log, the request's trace) too.
    /// </summary>
    private static string Redact(TransferEventLog.TransferEvent entry, string account)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(entry.Json)!.AsObject();
        node["sequence"] = 0;
        node["silo"] = null;
        node["trace_id"] = null;
        var other = entry.From == account ? entry.To : entry.From;
        if (other is not null && other != account)
        {
            var side = entry.From == account ? "to" : "from";
            node[side + "_available"] = null;
            node[side + "_version"] = 0;
        }

        return node.ToJsonString();
    }

    internal static IResult Metrics(HttpContext context, MetricsFeed stream, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    {
        if (stream.Subscribe() is not { } subscriber)
        {
            return TooManySubscribers(MetricsFeed.MaxSubscribers);
        }

        // As for the transfers stream: the place is freed when the request ends, even if the response never started.
        context.Response.RegisterForDispose(subscriber);
        return TypedResults.ServerSentEvents(StreamMetrics(subscriber, json.Value.SerializerOptions, KeyWatch.Start(context)));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamMetrics(MetricsFeed.Subscriber subscriber, JsonSerializerOptions json, KeyWatch watch)
    {
        using (subscriber)
        {
            var buffer = subscriber.Buffer;
            while (await SendThenWait(null, buffer.Reader, watch))
            {
                while (buffer.Reader.TryRead(out var item))
                {
                    yield return new SseItem<string>(item.Json, item.Type) { ReconnectionInterval = Reconnect };
                }
            }

            if (watch.Revoked)
            {
                yield return Revoked(json);
            }
        }
    }

    private static IResult TooManySubscribers(int limit) =>
        Problems.Create(StatusCodes.Status503ServiceUnavailable, "too_many_subscribers", "Too many event subscribers.",
            $"This API process serves at most {limit} subscribers of this stream at once; try again later or another instance.");
}
