using Transactor.Api.Hosting;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Security;

namespace Transactor.Api.Apis;

/// <summary>Transfers between accounts, and reading any recorded movement.</summary>
public static class TransfersApi
{
    private static readonly string[] FullRequired = ["from", "to", "amount", "currency"];
    private static readonly string[] SimpleRequired = ["from", "to", "amount"];

    public static IEndpointRouteBuilder MapTransfersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/").WithTags("Transfers").RequireAuthorization(Roles.AnyKeyPolicy);
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

    /// <summary>Executes a movement and answers with its outcome: 201, 202 while recovery finishes it, or a problem.</summary>
    internal static async Task<IResult> Execute(HttpContext context, IClusterClient client, ApiMetrics metrics, TransferRequest request)
    {
        var gatewayLost = context.RequestServices.GetRequiredService<GatewayLoss>().Token;
        TransferResult result;
        try
        {
            result = await client.GetCoordinator().Execute(request).WaitAsync(gatewayLost);
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
        return result.Status switch
        {
            TransferStatus.Committed => TypedResults.Created(location, TransferView.Of(result, account => AccountAccess.MaySee(context, account))),
            TransferStatus.Pending => TypedResults.Accepted(location, TransferView.Of(result, account => AccountAccess.MaySee(context, account))),
            _ when result.Reason == RejectionReason.NotOwner => AccountAccess.NotOwner(),
            _ => Problems.Rejected(result),
        };
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

        if (await context.RequestServices.GetRequiredService<AccountAccess>().RequireOwner(context, from!) is { } forbidden)
        {
            return forbidden;
        }

        return await Execute(context, client, metrics, new TransferRequest(key, from, to, amount, currency));
    }

    private static async Task<IResult> Get(string id, HttpContext context, IClusterClient client, AccountAccess access)
    {
        var admin = context.User.IsAdmin();
        if (!Ids.IsValidTransferId(id))
        {
            return admin ? Problems.TransferNotFound(id) : NotTheirs();
        }

        var result = await client.GetTransferResult(id);
        if (admin)
        {
            return result is null ? Problems.TransferNotFound(id) : TypedResults.Ok(TransferView.Of(result));
        }

        // A client key reads a movement of an account it owns, and learns nothing of any other,
        // not even whether it exists.
        if (result is null || !await OwnsEither(context, access, result.Request))
        {
            return NotTheirs();
        }

        return TypedResults.Ok(TransferView.Of(result, account => AccountAccess.MaySee(context, account)));
    }

    private static async Task<bool> OwnsEither(HttpContext context, AccountAccess access, TransferRequest request)
    {
        foreach (var account in new[] { request.DebitAccountId, request.CreditAccountId })
        {
            if (account is not null && await access.RequireOwner(context, account) is null)
            {
                return true;
            }
        }

        return false;
    }

    private static IResult NotTheirs() =>
        Problems.Create(StatusCodes.Status403Forbidden, "not_owner", "The API key may not read this movement.",
            "A client key may read only movements of accounts it owns.");

    /// <summary>The body of <c>POST /transfers</c>.</summary>
    public sealed record TransferBody(string From, string To, long Amount, string Currency);

    /// <summary>The body of <c>POST /transfer</c>.</summary>
    public sealed record SimpleTransferBody(string From, string To, long Amount);
}
