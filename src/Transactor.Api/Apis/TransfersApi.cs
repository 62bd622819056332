using Transactor.Api.Hosting;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Security;

namespace Transactor.Api.Apis;

/// <summary>Transfers between accounts, and reading any recorded movement.</summary>
public static class TransfersApi
{
    internal static readonly string[] FullRequired = ["from", "to", "amount", "currency"];
    private static readonly string[] SimpleRequired = ["from", "to", "amount"];
    internal static readonly string[] PendingOptional = ["pending", "timeout", "metadata"];
    private static readonly string[] TransfersFields = [.. FullRequired, .. PendingOptional, "legs"];
    private static readonly string[] LinkedOnly = ["legs", "metadata"];
    private static readonly string[] PostOptional = ["amount", "metadata"];
    private static readonly string[] VoidOptional = ["metadata"];

    public static IEndpointRouteBuilder MapTransfersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/").WithTags("Transfers").RequireAuthorization(Roles.AnyKeyPolicy);
        group.MapPost("/transfers", (HttpContext context, IClusterClient client, ApiMetrics metrics) => Transfer(context, client, metrics, FullRequired))
            .WithSummary("Transfer money between two accounts of one currency, or along up to 100 linked legs that all commit or none do")
            .WithDescription("Either {from,to,amount,currency} (optionally pending and timeout), or {legs:[{from,to,amount,currency},...]} for a linked transfer: 1-100 legs under one idempotency key, all applied or none; a rejection names the leg at fault (failed_leg). Both take optional metadata: up to 16 string key/values.")
            .Accepts<TransferBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .WithMetadata(new BodyLimit(JsonBody.MaxLinkedBytes))
            .RequireLedgerAdmission();
        group.MapPost("/transfer", (HttpContext context, IClusterClient client, ApiMetrics metrics) => Transfer(context, client, metrics, SimpleRequired))
            .WithSummary("Transfer money; the currency is taken from the accounts")
            .Accepts<SimpleTransferBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireLedgerAdmission();
        group.MapGet("/transfers/{id}", Get).WithSummary("Read a transfer, deposit or withdrawal by its idempotency key");
        group.MapPost("/transfers/{id}/post", (string id, HttpContext context, IClusterClient client, ApiMetrics metrics) => EndPending(id, TransferPhase.Post, context, client, metrics))
            .WithSummary("Post a pending transfer: move its amount, or a smaller one given as amount (the rest is released)")
            .WithDescription("Idempotent: posting again with the same amount answers as the first post. Errors: pending_transfer_not_found (404), pending_transfer_already_posted, pending_transfer_already_voided, pending_transfer_expired, pending_transfer_in_flight (409, the last retryable), post_exceeds_pending_amount (422).")
            .Accepts<PostBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireLedgerAdmission();
        group.MapPost("/transfers/{id}/void", (string id, HttpContext context, IClusterClient client, ApiMetrics metrics) => EndPending(id, TransferPhase.Void, context, client, metrics))
            .WithSummary("Void a pending transfer: release its hold")
            .WithDescription("Idempotent: voiding again answers as the first void. Errors: pending_transfer_not_found (404), pending_transfer_already_posted, pending_transfer_expired, pending_transfer_in_flight (409, the last retryable).")
            .Produces<TransferView>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .RequireLedgerAdmission();
        return app;
    }

    /// <summary>The <c>Prefer</c> preference (RFC 7240) that asks for a 202 once the movement is recorded, instead of waiting for its outcome.</summary>
    public const string RespondAsync = "respond-async";

    /// <summary>
    /// Executes a movement and answers with its outcome: 201, 202 while recovery finishes it, or a
    /// problem. With <c>Prefer: respond-async</c>, answers 202 as soon as the movement is durably
    /// recorded, and the ledger drives it to its end in the background (docs/events.md).
    /// </summary>
    internal static async Task<IResult> Execute(HttpContext context, IClusterClient client, ApiMetrics metrics, TransferRequest request)
    {
        var gatewayLost = context.RequestServices.GetRequiredService<GatewayLoss>().Token;
        var respondAsync = PrefersAsync(context.Request);
        TransferResult result;
        try
        {
            var coordinator = client.GetCoordinator();
            result = await (respondAsync ? coordinator.Submit(request) : coordinator.Execute(request)).WaitAsync(gatewayLost);
        }
        catch (OperationCanceledException) when (gatewayLost.IsCancellationRequested)
        {
            // The call may have gone through a gateway that died: its answer would never come.
            throw new LedgerUnavailableException();
        }

        metrics.Outcome(result);
        if (result.Replayed)
        {
            context.Response.Headers[IdempotencyKey.ReplayedHeaderName] = "true";
        }

        var location = $"/transfers/{Uri.EscapeDataString(result.Request.PendingTransferId ?? result.TransferId)}";
        if (respondAsync && result.Status == TransferStatus.Pending)
        {
            context.Response.Headers["Preference-Applied"] = RespondAsync;
        }

        return result.Status switch
        {
            TransferStatus.Committed when result.Request.PendingTransferId is not null => TypedResults.Ok(Visible(context, result)),
            TransferStatus.Committed => TypedResults.Created(location, Visible(context, result)),
            TransferStatus.Pending => TypedResults.Accepted(location, Visible(context, result)),
            _ when result.Reason == RejectionReason.NotOwner => AccountAccess.NotOwner(),
            _ => Problems.Rejected(result),
        };
    }

    /// <summary>True when a <c>Prefer</c> header of the request holds <c>respond-async</c> (RFC 7240: comma-separated preferences, case-insensitive).</summary>
    internal static bool PrefersAsync(HttpRequest request)
    {
        foreach (var header in request.Headers["Prefer"])
        {
            foreach (var preference in (header ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var name = preference.Split(';', 2)[0].Split('=', 2)[0].Trim();
                if (name.Equals(RespondAsync, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static async Task<IResult> Transfer(HttpContext context, IClusterClient client, ApiMetrics metrics, string[] required)
    {
        if (!IdempotencyKey.TryRead(context.Request, out var key, out var problem))
        {
            return problem!;
        }

        // POST /transfers takes a single transfer or a linked one (legs); POST /transfer only the first.
        var linkedAllowed = required == FullRequired;
        var (body, bodyProblem) = linkedAllowed
            ? await JsonBody.Read(context.Request, [], TransfersFields, context.RequestAborted, JsonBody.MaxLinkedBytes)
            : await JsonBody.Read(context.Request, required, PendingOptional, context.RequestAborted);
        if (body is null)
        {
            return bodyProblem!;
        }

        TransferRequest? request;
        IResult? requestProblem;
        if (linkedAllowed && body.Has("legs"))
        {
            (request, requestProblem) = ReadLinked(body, key);
        }
        else if (body.Missing(required) is { } missing)
        {
            return missing;
        }
        else
        {
            (request, requestProblem) = ReadTransfer(body, key);
        }

        if (request is null)
        {
            return requestProblem!;
        }

        // Whoever debits an account must own it: every leg's debited account, for a linked transfer.
        var access = context.RequestServices.GetRequiredService<AccountAccess>();
        foreach (var from in DebitedAccounts(request))
        {
            if (await access.RequireOwner(context, from) is { } forbidden)
            {
                return forbidden;
            }
        }

        return await Execute(context, client, metrics, request);
    }

    /// <summary>The accounts a movement debits, each once: the ones a client key must own.</summary>
    internal static IEnumerable<string> DebitedAccounts(TransferRequest request) =>
        request.Legs is { } legs ? legs.Items.Select(l => l.DebitAccountId).Distinct(StringComparer.Ordinal)
        : request.DebitAccountId is { } from ? [from] : [];

    /// <summary>The linked transfer a checked body with <c>legs</c> asks for, or the problem with its fields.</summary>
    private static (TransferRequest? Request, IResult? Problem) ReadLinked(JsonBody body, string key)
    {
        foreach (var field in TransfersFields)
        {
            if (!LinkedOnly.Contains(field) && body.Has(field))
            {
                return (null, Problems.InvalidField(field, $"A linked transfer names its accounts, amounts and currencies in its legs, and cannot be pending: send '{field}' in a leg, or send no 'legs'."));
            }
        }

        if (!body.TryLegs(out var legs, out var problem) || !body.TryMetadata(out var metadata, out problem))
        {
            return (null, problem);
        }

        return (TransferRequest.Linked(key, legs!, metadata), null);
    }

    /// <summary>The movement a checked body asks for under idempotency key <paramref name="key"/>, or the problem with its fields.</summary>
    internal static (TransferRequest? Request, IResult? Problem) ReadTransfer(JsonBody body, string key)
    {
        if (!body.TryString("from", out var from, out var problem) || !body.TryString("to", out var to, out problem)
            || !body.TryAmount(out var amount, out problem) || !body.TryString("currency", out var currency, out problem)
            || !body.TryBool("pending", out var pending, out problem)
            || !body.TryDuration("timeout", PendingTransfers.MinTimeout, PendingTransfers.MaxTimeout, out var timeout, out problem)
            || !body.TryMetadata(out var metadata, out problem))
        {
            return (null, problem);
        }

        if (timeout is not null && !pending)
        {
            return (null, Problems.InvalidField("timeout", "A timeout is for a pending transfer: send \"pending\": true with it."));
        }

        foreach (var (field, id) in new[] { ("from", from), ("to", to) })
        {
            if (!Ids.IsValidAccountId(id))
            {
                return (null, Problems.InvalidField(field, $"Account ids are 1-{Ids.MaxAccountIdLength} characters of letters, digits, '-', '_' and '.'."));
            }
        }

        if (currency is not null && !Currency.IsValid(currency))
        {
            return (null, Problems.InvalidField("currency", "The currency must be an ISO 4217 code: three upper-case letters such as USD."));
        }

        var request = pending ? TransferRequest.Pending(key, from!, to!, amount, currency, timeout) : new TransferRequest(key, from, to, amount, currency);
        return (request with { Metadata = metadata }, null);
    }

    /// <summary>Posts or voids a pending transfer: 200 with the post or void, or a problem.</summary>
    private static async Task<IResult> EndPending(string id, TransferPhase phase, HttpContext context, IClusterClient client, ApiMetrics metrics)
    {
        if (!Ids.IsValidTransferId(id) || id.Length > IdempotencyKey.MaxLength)
        {
            return Problems.Create(StatusCodes.Status404NotFound, RejectionReason.PendingTransferNotFound.ToCode(), "The transfer was rejected.", $"No pending transfer has id '{id}'.");
        }

        // Posting or voiding moves the pending transfer's debit: only its owner (or an admin) may.
        if (!context.User.IsAdmin())
        {
            var pending = await client.GetTransferResult(id);
            if (pending?.Request.DebitAccountId is not { } debit
                || await context.RequestServices.GetRequiredService<AccountAccess>().RequireOwner(context, debit) is not null)
            {
                return AccountAccess.NotOwner();
            }
        }

        long? amount = null;
        MetadataMap? metadata = null;
        if (context.Request.ContentLength is not 0 && (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0))
        {
            var (body, bodyProblem) = await JsonBody.Read(context.Request, [], phase == TransferPhase.Post ? PostOptional : VoidOptional, context.RequestAborted);
            if (body is null)
            {
                return bodyProblem!;
            }

            if (!body.TryMetadata(out metadata, out var metadataProblem))
            {
                return metadataProblem!;
            }

            if (body.Has("amount"))
            {
                if (!body.TryAmount(out var posted, out var problem))
                {
                    return problem!;
                }

                amount = posted;
            }
        }

        var gatewayLost = context.RequestServices.GetRequiredService<GatewayLoss>().Token;
        TransferResult result;
        try
        {
            result = await client.GetCoordinator().EndPendingWithMetadata(id, phase, amount, metadata).WaitAsync(gatewayLost);
        }
        catch (OperationCanceledException) when (gatewayLost.IsCancellationRequested)
        {
            throw new LedgerUnavailableException();
        }

        metrics.Outcome(result);
        if (result.Replayed)
        {
            context.Response.Headers[IdempotencyKey.ReplayedHeaderName] = "true";
        }

        var location = $"/transfers/{Uri.EscapeDataString(id)}";
        return result.Status switch
        {
            TransferStatus.Committed => TypedResults.Ok(Visible(context, result)),
            TransferStatus.Pending => TypedResults.Accepted(location, Visible(context, result)),
            _ when result.Reason == RejectionReason.NotOwner => AccountAccess.NotOwner(),
            _ => Problems.Rejected(result),
        };
    }

    private static TransferView Visible(HttpContext context, TransferResult result) =>
        TransferView.Of(result).ShowingOnly(result, account => AccountAccess.MaySee(context, account));

    private static async Task<IResult> Get(string id, HttpContext context, IClusterClient client, AccountAccess access)
    {
        var admin = context.User.IsAdmin();
        if (!Ids.IsValidTransferId(id))
        {
            return admin ? Problems.TransferNotFound(id) : NotTheirs();
        }

        var result = await client.GetTransferResult(id);
        if (result is null)
        {
            return admin ? Problems.TransferNotFound(id) : NotTheirs();
        }

        // A client key reads a movement of an account it owns, and learns nothing of any other,
        // not even whether it exists. Of a linked transfer it reads the legs that name its accounts.
        var owned = admin ? null : await OwnedAccounts(context, access, result.Request);
        if (owned is { Count: 0 })
        {
            return NotTheirs();
        }

        // A pending transfer shows what ended it, if anything did.
        var end = result.Request.Phase == TransferPhase.Pending && result.Status == TransferStatus.Committed
            ? await client.GetTransferResult(PendingTransfers.EndId(id))
            : null;
        var view = TransferView.Of(result, end);
        return TypedResults.Ok(owned is null ? view : view.ShowingOnly(result, account => AccountAccess.MaySee(context, account)).WithLegsOf(result, owned));
    }

    /// <summary>
    /// The accounts <paramref name="request"/> names that the caller owns: every one for a linked
    /// transfer (its view shows their legs), the first found for any other movement (either
    /// account is enough to read it). Empty when it owns none.
    /// </summary>
    private static async Task<HashSet<string>> OwnedAccounts(HttpContext context, AccountAccess access, TransferRequest request)
    {
        var linked = request.Legs is not null;
        string?[] named = request.Legs is { } legs
            ? [.. legs.Items.SelectMany(l => new[] { l.DebitAccountId, l.CreditAccountId }).Distinct(StringComparer.Ordinal)]
            : [request.DebitAccountId, request.CreditAccountId];
        var owned = new HashSet<string>(StringComparer.Ordinal);
        foreach (var account in named)
        {
            if (account is not null && await access.RequireOwner(context, account) is null)
            {
                owned.Add(account);
                if (!linked)
                {
                    break;
                }
            }
        }

        return owned;
    }

    private static IResult NotTheirs() =>
        Problems.Create(StatusCodes.Status403Forbidden, "not_owner", "The API key may not read this movement.",
            "A client key may read only movements of accounts it owns.");

    /// <summary>The body of <c>POST /transfers</c>.</summary>
    /// <param name="Pending">True for a pending (two-phase) transfer: the amount is held on the debit account until posted or voided.</param>
    /// <param name="Timeout">For a pending transfer: an ISO 8601 duration (PT1S to P30D) after which it is voided.</param>
    /// <param name="Legs">Instead of from, to, amount and currency: the 1-100 legs of a linked transfer, applied all or none.</param>
    /// <param name="Metadata">Up to 16 string key/values (keys 1-64 letters, digits, '-', '_', '.'; values up to 256 characters), stored with the movement and returned.</param>
    public sealed record TransferBody(string? From, string? To, long? Amount, string? Currency, bool? Pending = null, string? Timeout = null, IReadOnlyList<LegBody>? Legs = null, IReadOnlyDictionary<string, string>? Metadata = null);

    /// <summary>One leg of a linked transfer.</summary>
    public sealed record LegBody(string From, string To, long Amount, string Currency);

    /// <summary>The optional body of <c>POST /transfers/{id}/post</c>: a smaller amount than held; the rest is released.</summary>
    public sealed record PostBody(long? Amount, IReadOnlyDictionary<string, string>? Metadata = null);

    /// <summary>The optional body of <c>POST /transfers/{id}/void</c>.</summary>
    public sealed record VoidBody(IReadOnlyDictionary<string, string>? Metadata = null);

    /// <summary>The body of <c>POST /transfer</c>.</summary>
    public sealed record SimpleTransferBody(string From, string To, long Amount, IReadOnlyDictionary<string, string>? Metadata = null);
}
