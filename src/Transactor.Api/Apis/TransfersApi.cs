using Transactor.Api.Hosting;
using Transactor.Api.Http;
using Transactor.Api.Metrics;

namespace Transactor.Api.Apis;

/// <summary>Transfers between accounts, and reading any recorded movement.</summary>
public static class TransfersApi
{
    private static readonly string[] FullRequired = ["from", "to", "amount", "currency"];
    private static readonly string[] SimpleRequired = ["from", "to", "amount"];

    public static IEndpointRouteBuilder MapTransfersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/").WithTags("Transfers");
        group.MapPost("/transfers", (HttpContext context, IClusterClient client, ApiMetrics metrics) => Transfer(context, client, metrics, FullRequired))
            .WithSummary("Transfer money between two accounts of one currency")
            .Accepts<TransferBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireRateLimiting(LedgerRateLimits.Policy);
        group.MapPost("/transfer", (HttpContext context, IClusterClient client, ApiMetrics metrics) => Transfer(context, client, metrics, SimpleRequired))
            .WithSummary("Transfer money; the currency is taken from the accounts")
            .Accepts<SimpleTransferBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireRateLimiting(LedgerRateLimits.Policy);
        group.MapGet("/transfers/{id}", Get).WithSummary("Read a transfer, deposit or withdrawal by its idempotency key");
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

        var location = $"/transfers/{Uri.EscapeDataString(result.TransferId)}";
        if (respondAsync && result.Status == TransferStatus.Pending)
        {
            context.Response.Headers["Preference-Applied"] = RespondAsync;
        }

        return result.Status switch
        {
            TransferStatus.Committed => TypedResults.Created(location, TransferView.Of(result)),
            TransferStatus.Pending => TypedResults.Accepted(location, TransferView.Of(result)),
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

        var (body, bodyProblem) = await JsonBody.Read(context.Request, required, [], context.RequestAborted);
        if (body is null)
        {
            return bodyProblem!;
        }

        if (!body.TryString("from", out var from, out problem) || !body.TryString("to", out var to, out problem)
            || !body.TryAmount(out var amount, out problem) || !body.TryString("currency", out var currency, out problem))
        {
            return problem!;
        }

        foreach (var (field, id) in new[] { ("from", from), ("to", to) })
        {
            if (!Ids.IsValidAccountId(id))
            {
                return Problems.InvalidField(field, $"Account ids are 1-{Ids.MaxAccountIdLength} characters of letters, digits, '-', '_' and '.'.");
            }
        }

        if (currency is not null && !Currency.IsValid(currency))
        {
            return Problems.InvalidField("currency", "The currency must be an ISO 4217 code: three upper-case letters such as USD.");
        }

        return await Execute(context, client, metrics, new TransferRequest(key, from, to, amount, currency));
    }

    private static async Task<IResult> Get(string id, IClusterClient client)
    {
        if (!Ids.IsValidTransferId(id))
        {
            return Problems.TransferNotFound(id);
        }

        var result = await client.GetTransferResult(id);
        return result is null ? Problems.TransferNotFound(id) : TypedResults.Ok(TransferView.Of(result));
    }

    /// <summary>The body of <c>POST /transfers</c>.</summary>
    public sealed record TransferBody(string From, string To, long Amount, string Currency);

    /// <summary>The body of <c>POST /transfer</c>.</summary>
    public sealed record SimpleTransferBody(string From, string To, long Amount);
}
