using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Transactor.Api.Hosting;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Security;

namespace Transactor.Api.Apis;

/// <summary>
/// <c>POST /transfers/batch</c>: up to <see cref="MaxItems"/> independent transfers in one request,
/// each with its own idempotency key and its own result, answered together (TigerBeetle's request
/// batching). The body is a JSON array read as it arrives, one item at a time, within
/// <see cref="MaxBytes"/>; each item is then a movement of its own through the unchanged protocol.
/// </summary>
public static class BatchTransfersApi
{
    /// <summary>The most transfers one batch may carry.</summary>
    public const int MaxItems = 1_000;

    /// <summary>The largest batch body: a thousand items of up to about 1 KiB each.</summary>
    public const int MaxBytes = 1024 * 1024;

    /// <summary>How many of one batch's transfers go to the ledger at once; the rest wait their turn, in order.</summary>
    public const int MaxItemsInFlight = BatchItemOutcome.MaxItems;

    /// <summary>
    /// How many of a batch's transfers go in one coordinator call (<see cref="ITransferCoordinatorGrain.ExecuteMany"/>),
    /// which runs them all at once. A larger batch sends its chunks one after another: a call then
    /// lasts about as long as its slowest item, as one <c>Execute</c> would, however deep the silo's
    /// admission queue (100 per call, measured as fast, would wait in it seven times per call).
    /// </summary>
    public const int ItemsPerCall = MaxItemsInFlight;

    private static readonly string[] ItemRequired = ["id", .. TransfersApi.FullRequired];

    private static readonly JsonSerializerOptions ItemOptions = new() { MaxDepth = 8 };

    public static IEndpointRouteBuilder MapBatchTransfersApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/").WithTags("Transfers").RequireAuthorization(Roles.AnyKeyPolicy).MapPost("/transfers/batch", Submit)
            .WithSummary($"Submit up to {MaxItems} independent transfers, each with its own idempotency key (id) and result")
            .WithDescription($"The body is a JSON array of transfers, each {{\"id\",\"from\",\"to\",\"amount\",\"currency\",\"pending\"?,\"timeout\"?,\"metadata\"?}} where id is the transfer's idempotency key (rules of the Idempotency-Key header). 200 with one result per item, in order: its HTTP status as a single request would get, and the transfer or the problem. A malformed item fails alone, as does an item a client key may not debit (403 not_owner). A batch takes one token of the key's bucket per transfer: 429 rate_limited when they are not there, 400 batch_exceeds_bucket when the bucket is smaller than the batch. 413 payload_too_large over {MaxItems} items or {MaxBytes} bytes.")
            .Accepts<BatchItem[]>("application/json")
            .Produces<BatchView>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .WithMetadata(new BodyLimit(MaxBytes))
            .RequireLedgerAdmission();
        return app;
    }

    private static async Task<IResult> Submit(HttpContext context, IClusterClient client, ApiMetrics metrics)
    {
        var request = context.Request;
        if (!request.HasJsonContentType())
        {
            return Problems.UnsupportedMediaType();
        }

        if (request.ContentLength > MaxBytes)
        {
            return Problems.PayloadTooLarge(MaxBytes);
        }

        var items = new List<Item>();
        try
        {
            await using var body = new BoundedStream(request.Body, MaxBytes);
            await foreach (var element in JsonSerializer.DeserializeAsyncEnumerable<JsonElement>(body, ItemOptions, context.RequestAborted))
            {
                if (items.Count == MaxItems)
                {
                    return Problems.Create(StatusCodes.Status413PayloadTooLarge, "payload_too_large", "The batch is too large.", $"A batch carries at most {MaxItems} transfers.");
                }

                items.Add(Parse(element));
            }
        }
        catch (BoundedStream.LimitExceededException)
        {
            return Problems.PayloadTooLarge(MaxBytes);
        }
        catch (JsonException ex)
        {
            return Problems.MalformedJson($"The body must be a JSON array of transfers: {ex.Message}");
        }

        if (items.Count == 0)
        {
            return Problems.BadRequest("empty_batch", "The batch holds no transfers.");
        }

        // One token per transfer, as if each were a request of its own (the request took one).
        var buckets = context.RequestServices.GetRequiredService<ClientBuckets>();
        if (items.Count > buckets.BurstOf(context))
        {
            return Problems.BadRequest("batch_exceeds_bucket", $"This key's token bucket holds {buckets.BurstOf(context)} tokens and a batch takes one per transfer: send at most that many transfers in one batch.");
        }

        if (!buckets.TryTake(context, items.Count - 1, out var retryAfter))
        {
            context.Response.Headers.RetryAfter = ClientBuckets.WholeSeconds(retryAfter).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Problems.Create(StatusCodes.Status429TooManyRequests, "rate_limited", "Too many requests for this API key.",
                "A batch takes one token per transfer from the key's token bucket (and the API's global one), and there are not that many; retry after the number of seconds in Retry-After.");
        }

        var coordinator = client.GetCoordinator();
        var gatewayLost = context.RequestServices.GetRequiredService<GatewayLoss>().Token;
        var access = context.RequestServices.GetRequiredService<AccountAccess>();
        var results = new ItemView?[items.Count];
        if (context.User.IsAdmin())
        {
            for (var i = 0; i < items.Count; i++)
            {
                results[i] = items[i].Request is null ? ItemView.Failed(items[i].Id, items[i].Problem!) : null;
            }
        }
        else
        {
            await Parallel.ForAsync(0, items.Count, new ParallelOptions { MaxDegreeOfParallelism = MaxItemsInFlight }, async (i, _) =>
                results[i] = await Refusal(context, items[i], access));
        }

        // The items left go to the ledger a chunk per call: one grain call for many movements, each
        // still a movement of its own, the chunk's items all at once.
        var runnable = Enumerable.Range(0, items.Count).Where(i => results[i] is null).ToArray();
        foreach (var chunk in runnable.Chunk(ItemsPerCall))
        {
            IReadOnlyList<BatchItemOutcome> outcomes;
            try
            {
                outcomes = await coordinator.ExecuteMany([.. chunk.Select(i => items[i].Request!)]).WaitAsync(gatewayLost);
            }
            catch (Exception ex) when (Unanswered(ex))
            {
                foreach (var i in chunk)
                {
                    results[i] = ItemView.Failed(items[i].Id, Unavailable());
                }

                continue;
            }

            if (outcomes.Count != chunk.Length)
            {
                throw new InvalidOperationException($"The coordinator answered {outcomes.Count} outcomes for {chunk.Length} items.");
            }

            for (var k = 0; k < chunk.Length; k++)
            {
                results[chunk[k]] = View(context, items[chunk[k]].Id, outcomes[k], metrics);
            }
        }

        return TypedResults.Ok(new BatchView(results.Count(r => r!.Status is >= 200 and < 300), results!));
    }

    private static Item Parse(JsonElement element)
    {
        var id = element.ValueKind == JsonValueKind.Object && element.TryGetProperty("id", out var key) && key.ValueKind == JsonValueKind.String ? key.GetString() : null;
        var (body, problem) = JsonBody.Of(element, ItemRequired, TransfersApi.PendingOptional);
        if (body is null)
        {
            return new Item(id, null, problem);
        }

        if (!IdempotencyKey.IsValid(id))
        {
            return new Item(id, null, Problems.InvalidField("id", $"Each transfer's id is its idempotency key: 1-{IdempotencyKey.MaxLength} printable ASCII characters other than '/' and '%'."));
        }

        var (transfer, transferProblem) = TransfersApi.ReadTransfer(body, id!);
        return new Item(id, transfer, transferProblem);
    }

    /// <summary>
    /// Why a client key's item does not go to the ledger (malformed, or debiting an account the key
    /// does not own), or null when it does. The account grain checks ownership again, through the
    /// request context every item's calls carry. The check reads the account: one that does not
    /// answer fails this item alone, with 503.
    /// </summary>
    private static async Task<ItemView?> Refusal(HttpContext context, Item item, AccountAccess access)
    {
        if (item.Request is not { } request)
        {
            return ItemView.Failed(item.Id, item.Problem!);
        }

        try
        {
            return request.DebitAccountId is { } from && await access.RequireOwner(context, from) is { } forbidden ? ItemView.Failed(item.Id, forbidden) : null;
        }
        catch (Exception ex) when (Unanswered(ex))
        {
            return ItemView.Failed(item.Id, Unavailable());
        }
    }

    private static ItemView View(HttpContext context, string? id, BatchItemOutcome outcome, ApiMetrics metrics)
    {
        if (outcome.Result is not { } result)
        {
            // The answers a single request gets for the same failure (ApiServices' exception handler).
            return ItemView.Failed(id, outcome.Failure switch
            {
                BatchItemFailure.Overloaded => Problems.Create(StatusCodes.Status429TooManyRequests, "too_many_requests", "The ledger is at capacity.",
                    "Nothing was recorded for this transfer; submit it again with the same id."),
                BatchItemFailure.Storage => Problems.Create(StatusCodes.Status503ServiceUnavailable, "storage_unavailable", "The ledger's database cannot be reached.",
                    "This transfer is applied at most once: submit it again with the same id, after a few seconds, to learn its outcome."),
                BatchItemFailure.Internal => Problems.Create(StatusCodes.Status500InternalServerError, "internal_error", "An unexpected error occurred.",
                    "The error has been logged. This transfer is applied at most once: submit it again with the same id to learn its outcome."),
                _ => Unavailable(),
            });
        }

        metrics.Outcome(result);
        var view = TransferView.Of(result).ShowingOnly(result, account => AccountAccess.MaySee(context, account));
        return result.Status switch
        {
            TransferStatus.Committed => new ItemView(id, StatusCodes.Status201Created, result.Replayed, view, null),
            TransferStatus.Pending => new ItemView(id, StatusCodes.Status202Accepted, result.Replayed, view, null),
            _ when result.Reason == RejectionReason.NotOwner => ItemView.Failed(id, AccountAccess.NotOwner()),
            _ => ItemView.Failed(id, Problems.Rejected(result)) with { Replayed = result.Replayed },
        };
    }

    /// <summary>A call that got no answer from the ledger (or was given up when the gateway was lost): the item's outcome is not known.</summary>
    private static bool Unanswered(Exception exception) =>
        exception is LedgerUnavailableException or TimeoutException or OrleansException or OperationCanceledException;

    private static IResult Unavailable() =>
        Problems.Create(StatusCodes.Status503ServiceUnavailable, "ledger_unavailable", "The ledger cannot answer right now.",
            "This transfer is applied at most once: submit it again with the same id to learn its outcome.");

    /// <summary>One item of a batch: the transfer it asks for, or why it cannot be read.</summary>
    private sealed record Item(string? Id, TransferRequest? Request, IResult? Problem);

    /// <summary>An item of the body of <c>POST /transfers/batch</c>: a transfer with its idempotency key.</summary>
    public sealed record BatchItem(string Id, string From, string To, long Amount, string Currency, bool? Pending = null, string? Timeout = null, IReadOnlyDictionary<string, string>? Metadata = null);

    /// <summary>The answer to a batch: how many items succeeded, and each item's result in the order sent.</summary>
    public sealed record BatchView(int Succeeded, IReadOnlyList<ItemView> Results);

    /// <summary>
    /// One item's result: the HTTP status a single request would have got, whether it repeated an
    /// earlier outcome of its id, and the transfer (2xx) or the problem (RFC 9457 fields) otherwise.
    /// </summary>
    public sealed record ItemView(string? Id, int Status, bool Replayed, TransferView? Transfer, IReadOnlyDictionary<string, object?>? Problem)
    {
        internal static ItemView Failed(string? id, IResult problem)
        {
            var json = (JsonHttpResult<Dictionary<string, object?>>)problem;
            return new ItemView(id, json.StatusCode ?? StatusCodes.Status400BadRequest, false, null, json.Value);
        }
    }
}
