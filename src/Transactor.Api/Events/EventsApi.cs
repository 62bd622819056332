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

    private static IResult Transfers(HttpContext context, TransferEventLog log, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, string? account, string? backlog)
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

        return TypedResults.ServerSentEvents(StreamTransfers(log, subscription, json.Value.SerializerOptions, context.RequestAborted));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamTransfers(
        TransferEventLog log, TransferEventLog.Subscription subscription, JsonSerializerOptions json, [EnumeratorCancellation] CancellationToken cancellation)
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
                yield return Item(log, entry);
            }

            var buffer = subscription.Buffer;
            while (await buffer.Reader.WaitToReadAsync(cancellation))
            {
                while (buffer.Reader.TryRead(out var entry))
                {
                    // Dropped while this client fell behind: it hears how many before the next one it gets.
                    if (buffer.TakeMissed() is > 0 and var missed)
                    {
                        yield return new SseItem<string>(JsonSerializer.Serialize(new MissedView(missed), json), "missed");
                    }

                    yield return Item(log, entry);
                }
            }
        }
    }

    private static SseItem<string> Item(TransferEventLog log, TransferEventLog.TransferEvent entry) =>
        new(entry.Json, "transfer") { EventId = log.EventId(entry.Sequence) };

    private static IResult Metrics(HttpContext context, MetricsFeed stream)
    {
        var subscriber = stream.Subscribe();
        return subscriber is null
            ? TooManySubscribers(MetricsFeed.MaxSubscribers)
            : TypedResults.ServerSentEvents(StreamMetrics(stream, subscriber, context.RequestAborted));
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamMetrics(MetricsFeed stream, SubscriberBuffer<StreamItem> subscriber, [EnumeratorCancellation] CancellationToken cancellation)
    {
        try
        {
            while (await subscriber.Reader.WaitToReadAsync(cancellation))
            {
                while (subscriber.Reader.TryRead(out var item))
                {
                    yield return new SseItem<string>(item.Json, item.Type) { ReconnectionInterval = Reconnect };
                }
            }
        }
        finally
        {
            stream.Unsubscribe(subscriber);
        }
    }

    private static IResult TooManySubscribers(int limit) =>
        Problems.Create(StatusCodes.Status503ServiceUnavailable, "too_many_subscribers", "Too many event subscribers.",
            $"This API process serves at most {limit} subscribers of this stream at once; try again later or another instance.");
}
