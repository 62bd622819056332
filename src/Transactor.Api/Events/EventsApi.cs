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

    public static IEndpointRouteBuilder MapEventsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/events").WithTags("Events");
        group.MapGet("/transfers", Transfers).RequireAuthorization(Roles.AnyKeyPolicy)
            .WithSummary("Every movement as it ends (SSE); ?account= to follow one account (a client key: one it owns), Last-Event-ID to resume, ?backlog= for recent ones")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/metrics", Metrics).RequireAuthorization(Roles.AdminPolicy)
            .WithSummary("A snapshot of throughput, latency, pressure, silos and runs every second, and every change of a run (SSE)")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    internal static async Task<IResult> Transfers(
        HttpContext context, TransferEventLog log, AccountAccess access, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, string? account, string? backlog)
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
        return TypedResults.ServerSentEvents(StreamTransfers(log, subscription, body, json.Value.SerializerOptions, redactFor, KeyWatch.Start(context)));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamTransfers(
        TransferEventLog log, TransferEventLog.Subscription subscription, CoalescingResponseStream body, JsonSerializerOptions json, string? redactFor, KeyWatch watch)
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

            foreach (var entry in subscription.Replay)
            {
                yield return Item(entry, redactFor);
            }

            var buffer = subscription.Buffer;
            // Everything at hand is written: send it in one go, then wait for more.
            while (await SendThenWait(body, buffer.Reader, watch))
            {
                while (buffer.Reader.TryRead(out var entry))
                {
                    // Dropped while this client fell behind: it hears how many before the next one it gets.
                    if (buffer.TakeMissed() is > 0 and var missed)
                    {
                        yield return new SseItem<string>(JsonSerializer.Serialize(new MissedView(missed), json), "missed");
                    }

                    yield return Item(entry, redactFor);
                }
            }

            if (watch.Revoked)
            {
                yield return Revoked(json);
            }
        }
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

    private static SseItem<string> Revoked(JsonSerializerOptions json) =>
        new(JsonSerializer.Serialize(new RevokedView("api_key_revoked"), json), "revoked");

    private static SseItem<string> Item(TransferEventLog.TransferEvent entry, string? redactFor) =>
        new(redactFor is null ? entry.Json : Redact(entry, redactFor), "transfer") { EventId = entry.Id };

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
