using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Transactor.Api.Http;

namespace Transactor.Api.Events;

/// <summary>The ledger's events as Server-Sent Events: ended movements, and a metrics snapshot every second. See docs/events.md.</summary>
public static class EventsApi
{
    /// <summary>How long a browser's <c>EventSource</c> waits before it reconnects after a lost connection.</summary>
    private static readonly TimeSpan Reconnect = TimeSpan.FromSeconds(2);

    public static IEndpointRouteBuilder MapEventsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/events").WithTags("Events").RequireAuthorization(Transactor.Api.Security.Roles.AdminPolicy);
        group.MapGet("/transfers", Transfers)
            .WithSummary("Every movement as it ends (SSE); ?account= to follow one account, Last-Event-ID to resume, ?backlog= for recent ones")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/metrics", Metrics)
            .WithSummary("A snapshot of throughput, latency, pressure, silos and runs every second, and every change of a run (SSE)")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    internal static IResult Transfers(HttpContext context, TransferEventLog log, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, string? account, string? backlog)
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
        return TypedResults.ServerSentEvents(StreamTransfers(log, subscription, body, json.Value.SerializerOptions, context.RequestAborted));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamTransfers(
        TransferEventLog log, TransferEventLog.Subscription subscription, CoalescingResponseStream body, JsonSerializerOptions json,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        using (subscription)
        {
            // First, and at once: the response starts (its headers reach the client) before any movement ends.
            yield return new SseItem<string>(JsonSerializer.Serialize(new ReadyView(log.Instance), json), "ready") { ReconnectionInterval = Reconnect };
            if (subscription.Gap is { } gap)
            {
                yield return new SseItem<string>(JsonSerializer.Serialize(gap, json), "gap") { ReconnectionInterval = Reconnect };
            }

            foreach (var entry in subscription.Replay)
            {
                yield return Item(entry);
            }

            var buffer = subscription.Buffer;
            while (true)
            {
                // Everything at hand is written: send it in one go, then wait for more.
                await body.SendAsync(cancellation);
                if (!await buffer.Reader.WaitToReadAsync(cancellation))
                {
                    break;
                }

                while (buffer.Reader.TryRead(out var entry))
                {
                    // Dropped while this client fell behind: it hears how many before the next one it gets.
                    if (buffer.TakeMissed() is > 0 and var missed)
                    {
                        yield return new SseItem<string>(JsonSerializer.Serialize(new MissedView(missed), json), "missed");
                    }

                    yield return Item(entry);
                }
            }
        }
    }

    private static SseItem<string> Item(TransferEventLog.TransferEvent entry) =>
        new(entry.Json, "transfer") { EventId = entry.Id };

    internal static IResult Metrics(HttpContext context, MetricsFeed stream)
    {
        if (stream.Subscribe() is not { } subscriber)
        {
            return TooManySubscribers(MetricsFeed.MaxSubscribers);
        }

        // As for the transfers stream: the place is freed when the request ends, even if the response never started.
        context.Response.RegisterForDispose(subscriber);
        return TypedResults.ServerSentEvents(StreamMetrics(subscriber, context.RequestAborted));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamMetrics(MetricsFeed.Subscriber subscriber, [EnumeratorCancellation] CancellationToken cancellation)
    {
        using (subscriber)
        {
            var buffer = subscriber.Buffer;
            while (await buffer.Reader.WaitToReadAsync(cancellation))
            {
                while (buffer.Reader.TryRead(out var item))
                {
                    yield return new SseItem<string>(item.Json, item.Type) { ReconnectionInterval = Reconnect };
                }
            }
        }
    }

    private static IResult TooManySubscribers(int limit) =>
        Problems.Create(StatusCodes.Status503ServiceUnavailable, "too_many_subscribers", "Too many event subscribers.",
            $"This API process serves at most {limit} subscribers of this stream at once; try again later or another instance.");
}
