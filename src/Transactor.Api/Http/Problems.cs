namespace Transactor.Api.Http;

/// <summary>
/// RFC 9457 problem details with a stable <c>type</c> (<c>/problems/{code}</c>) and <c>code</c> per
/// kind of mistake. Bodies carry nothing request-specific beyond what the client sent, so a replayed
/// idempotent request gets the same bytes back.
/// </summary>
internal static class Problems
{
    public const string ContentType = "application/problem+json";

    public static IResult Create(int status, string code, string title, string detail, IReadOnlyDictionary<string, object?>? extensions = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["type"] = $"/problems/{code}",
            ["title"] = title,
            ["status"] = status,
            ["detail"] = detail,
            ["code"] = code,
        };
        if (extensions is not null)
        {
            foreach (var (key, value) in extensions)
            {
                body[key] = value;
            }
        }

        return TypedResults.Json(body, statusCode: status, contentType: ContentType);
    }

    public static IResult BadRequest(string code, string detail) => Create(StatusCodes.Status400BadRequest, code, "The request is not valid.", detail);

    public static IResult MalformedJson(string detail) => BadRequest("malformed_json", detail);

    public static IResult InvalidField(string field, string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid_field", "A field of the request is not valid.", detail, new Dictionary<string, object?> { ["field"] = field });

    /// <summary>A 400 for metadata that breaks a rule (<see cref="MetadataMap"/>), naming the field (<c>metadata</c> or <c>metadata.key</c>).</summary>
    public static IResult InvalidMetadata(string field, string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid_metadata", "The metadata is not valid.", detail, new Dictionary<string, object?> { ["field"] = field });

    /// <summary>A 400 for a <c>legs</c> array that is not 1-100 objects; <paramref name="leg"/> names the item at fault.</summary>
    public static IResult InvalidLegs(string detail, int? leg = null) =>
        Create(StatusCodes.Status400BadRequest, "invalid_legs", "The legs of the linked transfer are not valid.", detail,
            new Dictionary<string, object?> { ["field"] = leg is { } at ? $"legs[{at}]" : "legs", ["leg"] = leg });

    /// <summary>A 400 for one field of one leg of a linked transfer.</summary>
    public static IResult InvalidLegField(string field, int leg, string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid_field", "A field of the request is not valid.", detail, new Dictionary<string, object?> { ["field"] = field, ["leg"] = leg });

    public static IResult InvalidAmount(string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid_amount", "The amount is not valid.", detail, new Dictionary<string, object?> { ["field"] = "amount" });

    public static IResult AccountNotFound(string accountId) =>
        Create(StatusCodes.Status404NotFound, "account_not_found", "The account does not exist.", $"No account '{accountId}' has been opened.");

    public static IResult TransferNotFound(string transferId) =>
        Create(StatusCodes.Status404NotFound, "transfer_not_found", "The transfer does not exist.", $"Nothing has been recorded under id '{transferId}'.");

    /// <summary>
    /// 429 with <c>Retry-After</c>: the API's limit on requests in flight, or a silo's on movements
    /// (<c>Transactor:Transfers:MaxQueuedTransfers</c>), refused the request before anything was recorded.
    /// </summary>
    public static IResult TooManyRequests(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.Headers.RetryAfter = "1";
        return Create(StatusCodes.Status429TooManyRequests, TooManyRequestsCode, TooManyRequestsTitle, TooManyRequestsDetail);
    }

    /// <summary>The body of <see cref="TooManyRequests"/> as UTF-8 JSON, for answering without building a result.</summary>
    public static byte[] TooManyRequestsBody() => System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
    {
        ["type"] = $"/problems/{TooManyRequestsCode}",
        ["title"] = TooManyRequestsTitle,
        ["status"] = StatusCodes.Status429TooManyRequests,
        ["detail"] = TooManyRequestsDetail,
        ["code"] = TooManyRequestsCode,
    });

    private const string TooManyRequestsCode = "too_many_requests";
    private const string TooManyRequestsTitle = "The ledger is at capacity.";
    private const string TooManyRequestsDetail = "Too many requests are in flight; retry after the number of seconds in Retry-After, with the same Idempotency-Key.";

    /// <summary>
    /// 503 with <c>Retry-After</c>: the request waited for a place in the API's admission queue
    /// longer than its bound (<c>Transactor:Api:Admission:QueueTimeout</c>, shorter once the queue
    /// stands) and was refused before any of its work started: nothing was recorded.
    /// </summary>
    public static IResult QueueTimeout(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.Headers.RetryAfter = "1";
        return Create(StatusCodes.Status503ServiceUnavailable, "queue_timeout", "The ledger is overloaded.",
            "The request waited longer than the admission queue allows and was not started; nothing was recorded. Retry after the number of seconds in Retry-After, with the same Idempotency-Key.");
    }

    /// <summary>
    /// 503 with <c>Retry-After</c>: the ledger's database did not answer or failed the request (it is
    /// down, restarting or unreachable). Nothing the request asked for was applied without being
    /// stored: a retry with the same idempotency key gets the one outcome the key has.
    /// </summary>
    public static IResult StorageUnavailable(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.Headers.RetryAfter = StorageRetryAfterSeconds;
        return Create(StatusCodes.Status503ServiceUnavailable, "storage_unavailable", "The ledger's database cannot be reached.",
            "The ledger could not read or write its database. Retry after the number of seconds in Retry-After, with the same Idempotency-Key; the request is applied at most once.");
    }

    // A database restarting takes seconds; a retry after one would mostly meet it still down.
    private const string StorageRetryAfterSeconds = "5";

    public static IResult UnsupportedMediaType() =>
        Create(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type", "The body must be JSON.", "Send the body as application/json.");

    public static IResult PayloadTooLarge(int maxBytes) =>
        Create(StatusCodes.Status413PayloadTooLarge, "payload_too_large", "The body is too large.", $"Bodies are limited to {maxBytes} bytes.");

    public static IResult IdempotencyKeyMissing() =>
        BadRequest("idempotency_key_missing", $"Send an '{IdempotencyKey.HeaderName}' header (1-{IdempotencyKey.MaxLength} printable characters) with every request that moves money.");

    public static IResult IdempotencyKeyInvalid() =>
        BadRequest("idempotency_key_invalid", $"The '{IdempotencyKey.HeaderName}' header must be 1-{IdempotencyKey.MaxLength} printable ASCII characters other than '/' and '%' (space to '~', 0x20-0x7E), so that the movement's URL can carry it.");

    /// <summary>The problem for a rejected movement: 404 for an unknown account, 422 for every other business rule.</summary>
    public static IResult Rejected(TransferResult result)
    {
        var reason = result.Reason;
        var status = reason switch
        {
            RejectionReason.AccountNotFound or RejectionReason.PendingTransferNotFound => StatusCodes.Status404NotFound,
            RejectionReason.PendingTransferAlreadyPosted or RejectionReason.PendingTransferAlreadyVoided or RejectionReason.PendingTransferExpired
                or RejectionReason.PendingTransferInFlight => StatusCodes.Status409Conflict,
            _ => StatusCodes.Status422UnprocessableEntity,
        };
        var detail = reason switch
        {
            RejectionReason.InsufficientFunds => "The debited account's available balance does not cover the amount.",
            RejectionReason.AccountNotFound => "An account named by the request has not been opened.",
            RejectionReason.AccountLocked => "An account named by the request is locked.",
            RejectionReason.SameAccount => "The same account is named on both sides.",
            RejectionReason.CurrencyMismatch => "The accounts, or the request and an account, are in different currencies.",
            RejectionReason.InvalidAmount => $"The amount must be a whole number of minor units from 1 to {Money.MaxAmountMinor}.",
            RejectionReason.IdempotencyKeyReused => "This idempotency key was used before with a different request.",
            RejectionReason.BalanceLimitExceeded => "Crediting the amount would exceed the largest balance an account can hold, or the account has as many pending transfers as it may.",
            RejectionReason.PendingTransferNotFound => "No pending transfer on hold has this id: it is unknown, was rejected, or is not a pending transfer.",
            RejectionReason.PendingTransferAlreadyPosted => "The pending transfer was posted already (a post with the same amount is answered as the first one).",
            RejectionReason.PendingTransferAlreadyVoided => "The pending transfer was voided already.",
            RejectionReason.PendingTransferExpired => "The pending transfer's timeout ran out and it was voided.",
            RejectionReason.PostExceedsPendingAmount => "A post may move at most the amount the pending transfer holds.",
            RejectionReason.PendingTransferInFlight => "The pending transfer is still being placed; nothing was recorded for this request. Send it again once the pending transfer has an outcome (GET /transfers/{id}).",
            _ => reason.ToString(),
        };
        var extensions = new Dictionary<string, object?>
        {
            ["transfer_id"] = result.Request.PendingTransferId ?? result.TransferId,
            ["status"] = status,
        };
        if (result.FailedLeg is { } leg)
        {
            // A linked transfer: which leg failed, so the client can mend that one.
            extensions["failed_leg"] = leg;
            detail = $"Leg {leg}: {detail}";
        }

        return Create(status, reason.ToCode(), "The transfer was rejected.", detail, extensions);
    }
}
